"""``otalink tuf-client``: the conformance-suite client interface over our TUF client."""

from __future__ import annotations

import argparse
from typing import Any

from otalink.host.tools.tufclient.client import add_arguments, run


def _cmd(a: argparse.Namespace) -> int:
    return run(a)


def register(subparsers: Any) -> None:
    """Add ``otalink tuf-client``."""
    p = subparsers.add_parser("tuf-client", help="TUF client (conformance-suite interface)")
    add_arguments(p)
    p.set_defaults(func=_cmd)
