"""``otalink device unixboard``: the MicroPython unix port as an emulated board (until Ctrl-C),
in the foreground, or in the background with its wiring printed for a shell's ``eval``.

    otalink device unixboard --root DIR [--heapsize 64k] [--baud N] [--background | --stop]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from otalink.host.errors import EXIT_FAILURE, EXIT_OK


def register(sub: Any) -> None:
    """Add ``unixboard`` to the ``device`` group's subcommands."""
    u = sub.add_parser("unixboard", help="run the unix port as an emulated board (until Ctrl-C)")
    u.add_argument("--root", type=Path, required=True, help="the board's flash filesystem")
    u.add_argument("--heapsize", default=None, help="micropython -X heapsize (e.g. 64k)")
    u.add_argument("--baud", type=int, default=None, help="pace the board's UART (default off)")
    g = u.add_mutually_exclusive_group()
    g.add_argument(
        "--background",
        action="store_true",
        help="start it in the background; print BOARD=, PORT=, LINE_PORT= for a shell's eval",
    )
    g.add_argument("--stop", action="store_true", help="power off the board running in --root")
    u.set_defaults(func=_unixboard)


def _board_pid(root: Path) -> int | None:
    """The pid of the `otalink device unixboard` running in ``root`` (its wiring file)."""
    from otalink.host.sim.unixboard import WIRING_FILE

    try:
        pid = int(json.loads((root / WIRING_FILE).read_text())["pid"])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    argv = cmdline.split(b"\0")
    return pid if b"unixboard" in argv and b"--root" in argv else None  # not a recycled pid


def _unixboard_background(args: argparse.Namespace) -> int:
    from otalink.host.sim.unixboard import WIRING_FILE

    root = args.root.resolve()
    if _board_pid(root) is not None:
        print(f"otalink device unixboard: a board already runs in {root}", file=sys.stderr)
        return EXIT_FAILURE
    root.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        (root / WIRING_FILE).unlink()
    argv = ["device", "unixboard", "--root", str(root)]
    argv += ["--heapsize", args.heapsize] if args.heapsize else []
    argv += ["--baud", str(args.baud)] if args.baud else []
    code = "import sys; from otalink.host.cli import main; sys.exit(main(sys.argv[1:]))"
    with open(root / "unixboard.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, *argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # the shell's Ctrl-C / hangup does not power it off
        )
    deadline = time.monotonic() + 30
    while _board_pid(root) != proc.pid:
        if proc.poll() is not None or time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            print(
                f"otalink device unixboard: the board did not start (see {root}/unixboard.log)",
                file=sys.stderr,
            )
            return EXIT_FAILURE
        time.sleep(0.05)
    wiring = json.loads((root / WIRING_FILE).read_text())
    for name, value in (
        ("BOARD", "unix"),
        ("PORT", wiring["repl_port"]),
        ("LINE_PORT", wiring["uart_host"]),
    ):
        print(f"{name}={shlex.quote(value)}")
    print(f"# pid {proc.pid}; power off: otalink device unixboard --root {root} --stop")
    return EXIT_OK


def _unixboard_stop(root: Path) -> int:
    pid = _board_pid(root.resolve())
    if pid is None:
        print(f"otalink device unixboard: no board runs in {root}", file=sys.stderr)
        return EXIT_FAILURE
    os.kill(pid, signal.SIGTERM)  # powers off cleanly (the board's own handler)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if Path(f"/proc/{pid}").exists():
        os.kill(pid, signal.SIGKILL)
    print(f"board in {root} powered off")
    return EXIT_OK


def _unixboard(args: argparse.Namespace) -> int:
    from otalink.host.sim.unixboard import UnixBoard

    if args.background:
        return _unixboard_background(args)
    if args.stop:
        return _unixboard_stop(args.root)

    def _stop(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)  # power off cleanly: no orphaned micropython
    with UnixBoard(args.root, heapsize=args.heapsize, line_baud=args.baud) as board:
        print(f"REPL port (deploy --port): {board.port}")
        print(f"agent line, host end (info --port): {board.uart_host}")
        print(f"filesystem root: {args.root}   (Ctrl-C to power off)", flush=True)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return EXIT_OK
