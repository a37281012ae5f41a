"""The ``otalink`` command: one parser, one module per command group.

Each group module exposes ``register(subparsers)`` and sets ``func`` on its parsers; handlers
return an exit code (see ``docs/architecture.md``: 0 ok, 1 failure, 2 usage, 3 refused,
4 not found, 5 link/connection error).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Command-group modules under otalink.host.cli; a missing one is skipped so the CLI keeps working
# while the tree grows.
GROUPS: tuple[str, ...] = (
    "repo",
    "server",
    "tufclient",
    "agent",
    "user",
    "sim",
    "demo",
    "flash",
    "line",
    "device",
)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_NOT_FOUND = 4
EXIT_LINK = 5


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every available command group registered."""
    parser = argparse.ArgumentParser(prog="otalink", description="Over-the-air updates for ECUs.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in GROUPS:
        try:
            module = importlib.import_module(f"otalink.host.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"otalink.host.cli.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``otalink`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code = func(args)
    except KeyboardInterrupt:
        return 130
    return int(code)


if __name__ == "__main__":
    raise SystemExit(main())
