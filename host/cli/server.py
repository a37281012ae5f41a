"""``otalink server``: the embedded update server (Image + Director repositories, reports)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from otalink.host.errors import EXIT_LINK, EXIT_OK, EXIT_REFUSED
from otalink.host.tools.server.app import make_server


def cmd_server(a: argparse.Namespace) -> int:
    if a.host not in ("127.0.0.1", "localhost", "::1") and not a.allow_remote:
        print("refusing to bind a non-loopback address without --allow-remote", file=sys.stderr)
        return EXIT_REFUSED
    try:
        srv = make_server(
            a.root,
            a.host,
            a.port,
            db_path=a.db,
            rate_bps=a.rate,
            test_controls=a.test_controls,
        )
    except OSError as exc:
        print(f"cannot bind {a.host}:{a.port}: {exc}", file=sys.stderr)
        return EXIT_LINK
    host, port = srv.server_address[0], srv.server_address[1]
    print(f"otalink server on http://{host!s}:{port} serving {a.root}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Add ``otalink server``."""
    p = subparsers.add_parser("server", help="serve the repositories over HTTP (Range) + reports")
    p.add_argument("--root", required=True, help="directory with image/ and director/VIN/")
    p.add_argument("--port", type=int, default=8080, help="0 = any free port (printed)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host")
    p.add_argument("--db", help="SQLite file for reports (default ROOT/.reports.sqlite)")
    p.add_argument("--rate", type=int, help="throttle file bodies to BPS bytes/s (demo)")
    p.add_argument(
        "--test-controls", action="store_true", help="enable POST /_control (offline, rate)"
    )
    p.set_defaults(func=cmd_server)
