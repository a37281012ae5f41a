"""``otalink flash``: put one image on one ECU from a bench (esptool/mpremote-style).

Signs a bench install instruction with a development Director key the ECU trusts, streams the
image with the same ``EcuClient`` the host agent uses (its uploader: the one transfer engine,
``otalink.protocol.transfer.TxWindow``, as for the benches), optionally activates it, and with
``--json`` prints the transfer's figures. The goodput / line-rate ratio is printed only when the
line rate is known: ``--baud``, or a real serial port (opened at 115200 without ``--baud``); a
pseudo-terminal or a socket has no rate of its own (unpaced): then the throughput in B/s.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import stat
import sys
import time
from pathlib import Path
from typing import Any

from otalink.host.cli import progress
from otalink.host.errors import EXIT_OK, OtalinkError, UsageError, exit_code
from otalink.host.gateway.ecu import DEV_COMMAND_SEED, EcuClient, EcuError, EcuLinkError
from otalink.host.gateway.ecu.result import TransferFigures
from otalink.host.keys import BadKeyError, KeyPair, load_seed
from otalink.protocol import messages
from otalink.protocol.errors import ProtocolError


class FlashFigures(TransferFigures):
    """What ``otalink flash --json`` prints: the transfer's figures and what was flashed."""

    ecu_id: str
    version: str
    release_counter: int
    activated: bool
    goodput_bytes_per_s: float | None
    line_rate: int | None


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "flash",
        help="install one image on one ECU over a serial port (bench/HIL)",
        description="Sign a bench install instruction with a development Director key, stream "
        "IMAGE to the ECU on --port and wait for its verified result.",
    )
    p.add_argument("image", type=Path, help="image file (application bundle or firmware)")
    p.add_argument("--port", required=True, help="serial port or pyserial URL (socket://...)")
    p.add_argument("--ecu-id", required=True)
    p.add_argument("--hardware-id", required=True)
    p.add_argument(
        "--key",
        required=True,
        type=Path,
        help="Director private key file: PEM (otalink repo keygen) or hex seed (docs/hil.md Keys)",
    )
    p.add_argument(
        "--command-key",
        type=Path,
        default=None,
        help="command private key file (PEM or hex seed) signing --activate; default: the "
        "development command key (DEV_COMMAND_SEED, trusted by development ECUs)",
    )
    p.add_argument("--version", default=None, help="version string (default: from the file)")
    p.add_argument("--release-counter", type=int, default=None, help="default: the ECU's floor + 1")
    p.add_argument("--kind", choices=("app", "firmware"), default="app")
    p.add_argument("--expires-s", type=int, default=3600, help="instruction lifetime")
    p.add_argument(
        "--compress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="deflate the stream (default: only when it helps)",
    )
    p.add_argument("--activate", action="store_true", help="activate the slot once verified")
    p.add_argument(
        "--baud",
        type=int,
        default=None,
        help="line rate (a real port is opened at it, default 115200); the goodput/line-rate "
        "ratio is printed only when the rate is known",
    )
    p.add_argument("--timeout", type=float, default=2.0, help="reply timeout, seconds")
    p.add_argument("--json", action="store_true", help="print the transfer figures as JSON")
    p.set_defaults(func=run)


def _fail(exc: OtalinkError) -> int:
    """Report ``exc`` as ``otalink flash: error [code]: ...``; its exit code from the table."""
    print(f"otalink flash: error [{exc.code}]: {exc}", file=sys.stderr)
    return exit_code(exc)


# Pseudo-terminal slaves (Unix98 ptys): a LineSim or an emulated board, no line rate of their own.
_PTY_MAJORS = range(136, 144)
DEFAULT_BAUD = 115200


def line_rate(port: str, baud: int | None) -> int | None:
    """The line rate the figures can be compared with: ``baud`` when given; else the rate a
    real serial port is opened at; None for a pty, a socket or any URL (an unpaced line)."""
    if baud:
        return baud
    try:
        st = os.stat(port)
    except (OSError, ValueError):
        return None  # socket://, rfc2217://, loop:// ...: no rate we know
    if not stat.S_ISCHR(st.st_mode) or os.major(st.st_rdev) in _PTY_MAJORS:
        return None
    return DEFAULT_BAUD


def run(args: argparse.Namespace) -> int:
    try:
        image = args.image.read_bytes()
    except OSError as exc:
        return _fail(UsageError(str(exc), code="usage.not_found"))
    try:
        director = KeyPair(load_seed(args.key))
        command = load_seed(args.command_key) if args.command_key else DEV_COMMAND_SEED
    except BadKeyError as exc:
        return _fail(exc)
    except OSError as exc:
        return _fail(BadKeyError(str(exc)))
    rate = line_rate(args.port, args.baud)
    try:
        client = EcuClient(args.port, baud=rate, timeout=args.timeout, command_key=command)
    except EcuLinkError as exc:
        return _fail(exc)
    try:
        with client:
            info = client.hello()
            version = args.version or args.image.stem[:32]
            counter = args.release_counter
            if counter is None:
                counter = info.release_floor + 1
            now = int(time.time())
            instr = bytes(
                messages.encode_instruction(
                    args.ecu_id,
                    args.hardware_id,
                    version,
                    counter,
                    len(image),
                    hashlib.sha256(image).digest(),
                    now - 60,
                    now + args.expires_s,
                    args.image.name[:64],
                    1 if args.kind == "firmware" else 0,
                )
            )
            sigs = [(director.keyid, director.sign(instr))]
            started = time.monotonic()
            show = sys.stderr.isatty() or not args.json
            result = client.install(
                instr,
                sigs,
                image,
                compress=args.compress,
                progress=(lambda d, t: progress.transfer(d, t, started)) if show else None,
            )
            activated = False
            if args.activate:
                client.activate()
                activated = True
    except EcuError as exc:
        return _fail(exc)
    except (ValueError, ProtocolError) as exc:  # instruction fields out of bounds
        return _fail(UsageError(str(exc), code="usage.bad_instruction"))
    rate_bps = len(image) / result.seconds if result.seconds > 0 else None
    figures: FlashFigures = {
        **result.to_dict(),
        "ecu_id": args.ecu_id,
        "version": version,
        "release_counter": counter,
        "activated": activated,
        "goodput_bytes_per_s": rate_bps,
        "line_rate": rate,
    }
    if args.json:
        print(json.dumps(figures, sort_keys=True))
    else:
        if result.ratio is not None:
            speed = f"goodput/line rate {result.ratio:.3f} at {rate} baud"
        else:
            speed = f"{rate_bps or 0:.0f} B/s; unpaced line (no line rate: pass --baud for a ratio)"
        print(
            f"{args.ecu_id}: {len(image)} bytes verified in {result.seconds:.2f} s "
            f"(wire {result.wire_bytes} B, {speed})" + (", activated" if activated else "")
        )
    return EXIT_OK
