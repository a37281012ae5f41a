"""A MicroPython board's raw REPL over a serial port, through mpremote's SerialTransport.

Public interface (stable):
    BoardRepl.open(port: str, *, baud: int = 115200, soft_reset: bool = True,
                   timeout: float = 5.0) -> BoardRepl        (PortNotFoundError / BoardBusyError)
      .exec(code: str) -> str              stdout of ``code``; BoardExecError with the traceback
      .eval(expr: str) -> object           a Python literal printed by repr() on the board
      .eval_probe(code: str, shape: type[M]) -> M   last printed line of ``code``, a repr()'d
                                           dict, validated as the pydantic model ``shape``
      .write_file(path: str, data: bytes)  atomic on the board (temp + rename)
      .remove(path: str), .mkdirs(path: str)
      .start(code: str, keep_open=False)   run ``code`` without waiting (e.g. a reset)
      .reboot_to_main()                    soft reset that runs main.py (Ctrl-B, Ctrl-D)
      .output() -> str                     what the board printed since (after keep_open)
      .close()
mpremote is used as a library (SerialTransport): enter_raw_repl / exec / fs_writefile, the same
code path as the ``mpremote`` command.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import time
from typing import Any, TypeVar

from otalink.host.tools.deploy.errors import BoardBusyError, BoardExecError, PortNotFoundError
from otalink.host.validation import describe
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

_CHUNK = 2048  # bytes per raw-REPL exec (mpremote's raw-paste mode does the flow control)


class BoardRepl:
    """One open raw-REPL session with a board."""

    def __init__(self, transport: Any, port: str) -> None:
        self._t = transport
        self.port = port

    @classmethod
    def open(
        cls, port: str, *, baud: int = 115200, soft_reset: bool = True, timeout: float = 5.0
    ) -> BoardRepl:
        """Open ``port`` and get a raw REPL (Ctrl-C, Ctrl-A; optionally a soft reset)."""
        from mpremote.transport import TransportError
        from mpremote.transport_serial import SerialTransport

        try:
            # A read timeout: on a pty mpremote's reads would otherwise block forever.
            t = SerialTransport(port, baudrate=baud, timeout=min(1.0, timeout))
        except (TransportError, OSError, ValueError) as exc:
            raise PortNotFoundError(f"cannot open serial port {port}: {exc}") from exc
        except Exception as exc:  # serial.SerialException
            raise PortNotFoundError(f"cannot open serial port {port}: {exc}") from exc
        # Several attempts (Ctrl-C, Ctrl-A each) within ``timeout``: a board that is still
        # booting after a reset can miss the first Ctrl-C.
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                with contextlib.redirect_stdout(None):  # mpremote prints what it got on failure
                    t.enter_raw_repl(soft_reset=soft_reset, timeout_overall=min(2.0, left))
                break
            except (TransportError, OSError) as exc:
                if time.monotonic() + 0.1 < deadline:
                    continue
                _close(t)
                raise BoardBusyError(
                    f"{port}: no MicroPython REPL answered within {timeout:g} s (board busy "
                    "with code that ignores Ctrl-C, not MicroPython, or wrong baud rate)"
                ) from exc
        return cls(t, port)

    def exec(self, code: str) -> str:
        """Run ``code`` on the board; its stdout, or BoardExecError with the board's traceback."""
        from mpremote.transport import TransportError, TransportExecError

        try:
            out: bytes = self._t.exec(code)
        except TransportExecError as exc:
            raise BoardExecError(f"{self.port}: board raised:\n{exc.error_output}") from exc
        except (TransportError, OSError) as exc:
            raise BoardBusyError(f"{self.port}: REPL stopped answering: {exc}") from exc
        return out.decode("utf-8", "replace")

    def eval(self, expr: str) -> Any:
        """The value of ``expr`` on the board (it must repr() as a Python literal)."""
        text = self.exec(f"print(repr({expr}))").strip()
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError) as exc:
            raise BoardExecError(f"{self.port}: unexpected answer {text[:200]!r}") from exc

    def eval_probe(self, code: str, shape: type[M]) -> M:
        """Run ``code`` that prints one repr()'d dict as its last line; that dict as ``shape``.
        Whatever sits on the port may answer anything: a wrong shape is a BoardExecError."""
        text = self.exec(code).strip().rsplit("\n", 1)[-1]
        try:
            return shape.model_validate(ast.literal_eval(text))
        except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
            why = describe(exc) if isinstance(exc, ValidationError) else "not a Python literal"
            raise BoardExecError(f"{self.port}: unexpected answer {text[:200]!r}: {why}") from None

    def mkdirs(self, path: str) -> None:
        """Create ``path`` and its parents on the board (existing ones are fine)."""
        self.exec(
            "import os\n"
            f"p=''\nfor d in {path!r}.split('/'):\n"
            " p=p+'/'+d if p else d\n"
            " try:\n  os.mkdir(p)\n except OSError:\n  pass\n"
        )

    def write_file(self, path: str, data: bytes) -> None:
        """Write ``data`` to ``path``: to a temp name first, then rename (no torn files).

        Each raw-REPL exec carries up to _CHUNK bytes as base64 (binascii is on every port), so
        a small file costs one round trip and the board never compiles a large literal.
        """
        tmp = path + ".part"
        chunks = [data[i : i + _CHUNK] for i in range(0, len(data), _CHUNK)] or [b""]
        for i, chunk in enumerate(chunks):
            code = "import binascii, os\n" if i == 0 else ""
            code += f"f=open({tmp!r},{'wb' if i == 0 else 'ab'!r})\n"
            code += f"f.write(binascii.a2b_base64({base64.b64encode(chunk)!r}))\nf.close()\n"
            if i == len(chunks) - 1:
                code += (
                    f"try:\n os.remove({path!r})\nexcept OSError:\n pass\n"
                    f"os.rename({tmp!r},{path!r})\n"
                )
            self.exec(code)

    def remove(self, path: str) -> None:
        self.exec(f"import os\ntry:\n os.remove({path!r})\nexcept OSError:\n pass\n")

    def start(self, code: str, keep_open: bool = False) -> None:
        """Send ``code`` and return at once (it may reset the board); close the port unless
        ``keep_open`` (to collect what the board prints next with ``output``)."""
        from mpremote.transport import TransportError

        try:
            self._t.exec_raw_no_follow(code)
        except (TransportError, OSError) as exc:
            self.close()
            raise BoardBusyError(f"{self.port}: could not start: {exc}") from exc
        if not keep_open:
            self.close()

    def reboot_to_main(self) -> None:
        """Soft-reset so the board runs boot.py and main.py: leave the raw REPL (Ctrl-B) and
        press Ctrl-D in the friendly REPL (a soft reset from the raw REPL skips main.py)."""
        try:
            self._t.exit_raw_repl()
            self._t.serial.write(b"\x04")
        except Exception as exc:  # serial.SerialException, OSError
            self.close()
            raise BoardBusyError(f"{self.port}: could not reset the board: {exc}") from exc

    def output(self, limit: int = 4096) -> str:
        """What the board printed since (non-blocking; the last ``limit`` bytes)."""
        if self._t is None:
            return ""
        try:
            port = self._t.serial
            data = b""
            while port.in_waiting:
                data += port.read(port.in_waiting)
        except Exception:
            return ""
        return data[-limit:].decode("utf-8", "replace")

    def close(self) -> None:
        if self._t is not None:
            _close(self._t)
            self._t = None

    def __enter__(self) -> BoardRepl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _close(t: Any) -> None:
    with contextlib.suppress(Exception):
        t.close()
