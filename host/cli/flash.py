"""``otalink flash``: put one image on one ECU from a bench (esptool/mpremote-style).

Signs a bench install instruction with a development Director key the ECU trusts, streams the
image with the same ``EcuClient`` the host agent uses, optionally activates it, and with
``--json`` prints the transfer's figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from otalink.host.ecu import EcuClient, EcuError, EcuLinkError, EcuRejected
from otalink.host.keys import BadKeyError, KeyPair, load_seed
from otalink.protocol import messages
from otalink.protocol.errors import ProtocolError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_REFUSED, EXIT_NOT_FOUND, EXIT_LINK = 0, 1, 2, 3, 4, 5


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
    p.add_argument("--key", required=True, type=Path, help="Director key file (hex seed)")
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
    p.add_argument("--baud", type=int, default=115200, help="port rate (figures use it)")
    p.add_argument("--timeout", type=float, default=2.0, help="reply timeout, seconds")
    p.add_argument("--json", action="store_true", help="print the transfer figures as JSON")
    p.set_defaults(func=run)


def _bar(done: int, total: int, started: float) -> None:
    width = 40
    frac = done / total if total else 1.0
    fill = int(width * frac)
    rate = done / max(1e-6, time.monotonic() - started) / 1024
    sys.stderr.write(f"\r[{'#' * fill}{'.' * (width - fill)}] {frac * 100:5.1f}% {rate:7.1f} KiB/s")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    try:
        image = args.image.read_bytes()
    except OSError as exc:
        print(f"otalink flash: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND
    try:
        director = KeyPair(load_seed(args.key))
    except (OSError, BadKeyError) as exc:
        print(f"otalink flash: key: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        client = EcuClient(args.port, baud=args.baud, timeout=args.timeout)
    except EcuLinkError as exc:
        print(f"otalink flash: {exc}", file=sys.stderr)
        return EXIT_LINK
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
                progress=(lambda d, t: _bar(d, t, started)) if show else None,
            )
            activated = False
            if args.activate:
                client.activate()
                activated = True
    except EcuRejected as exc:
        print(f"otalink flash: refused by the ECU: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except EcuLinkError as exc:
        print(f"otalink flash: link: {exc}", file=sys.stderr)
        return EXIT_LINK
    except EcuError as exc:
        print(f"otalink flash: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except (ValueError, ProtocolError) as exc:  # instruction fields out of bounds
        print(f"otalink flash: {exc}", file=sys.stderr)
        return EXIT_USAGE
    figures = result.to_dict()
    figures.update(
        {"ecu_id": args.ecu_id, "version": version, "release_counter": counter,
         "activated": activated}
    )  # fmt: skip
    if args.json:
        print(json.dumps(figures, sort_keys=True))
    else:
        ratio = f"{result.ratio:.3f}" if result.ratio is not None else "n/a"
        print(
            f"{args.ecu_id}: {len(image)} bytes verified in {result.seconds:.2f} s "
            f"(wire {result.wire_bytes} B, goodput/line rate {ratio})"
            + (", activated" if activated else "")
        )
    return EXIT_OK
