"""``otalink line``: run the line simulator as a tool (two pty paths, paced, faults, counters)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Any

from otalink.host.errors import EXIT_OK, EXIT_USAGE
from otalink.host.sim.line import FaultConfig, LineSim


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "line",
        help="simulate a serial line between two pseudo-terminals (pacing, latency, faults)",
        description="Connect two ptys through a paced, fault-injecting line. Open the host path "
        "with any serial tool (pyserial, otalink flash --port), give the device path to the "
        "ECU agent. Prints both paths, then the byte counters.",
    )
    p.add_argument("--baud", type=int, default=115200, help="line rate, 8N1 (0 = unpaced)")
    p.add_argument("--latency-ms", type=float, default=0.0, help="one-way latency")
    p.add_argument("--ber", type=float, default=0.0, help="bit-error rate, e.g. 1e-5")
    p.add_argument("--drop", type=float, default=0.0, help="fraction of bytes dropped")
    p.add_argument("--drop-burst", type=int, default=1, help="mean length of a drop burst")
    p.add_argument("--dup", type=float, default=0.0, help="fraction of bytes duplicated")
    p.add_argument("--stall-every", type=float, default=None, help="mean seconds between stalls")
    p.add_argument("--stall-ms", type=float, default=0.0, help="length of each stall")
    p.add_argument("--directions", choices=("both", "h2d", "d2h"), default="both")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--interval", type=float, default=1.0, help="seconds between counter lines")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--json", action="store_true", help="print JSON lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        faults = FaultConfig(
            ber=args.ber,
            drop_rate=args.drop,
            drop_burst=args.drop_burst,
            dup_rate=args.dup,
            stall_interval_s=args.stall_every,
            stall_s=args.stall_ms / 1000.0,
            directions=args.directions,
        )
        sim = LineSim(
            baud=args.baud or None,
            latency_s=args.latency_ms / 1000.0,
            faults=faults,
            seed=args.seed,
        )
    except ValueError as exc:
        print(f"otalink line: {exc}", file=sys.stderr)
        return EXIT_USAGE
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    sim.start()
    try:
        head = {"host": sim.host_path, "device": sim.device_path, "baud": args.baud or None}
        if args.json:
            print(json.dumps(head), flush=True)
        else:
            print(f"host   {sim.host_path}", flush=True)
            print(f"device {sim.device_path}", flush=True)
        waited = 0.0
        while not done.wait(args.interval):
            waited += args.interval
            c = sim.counters()
            if args.json:
                print(json.dumps(c), flush=True)
            else:
                print(" ".join(f"{k}={v}" for k, v in c.items()), flush=True)
            if args.duration is not None and waited >= args.duration:
                break
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return EXIT_OK
