"""The ``otalink`` command: one parser, one module per command group.

Each group module exposes ``register(subparsers)`` and sets ``func`` on its parsers; handlers
return an exit code from the one table of ``otalink.host.errors`` (0 ok, 1 failure, 2 usage,
3 refused, 4 not found, 5 link/connection error; ``exit_code(exc)`` for an error).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from otalink.host.cli import agent, demo, device, flash, line, repo, server, sim, tufclient, user
from otalink.host.errors import EXIT_USAGE

# The command groups, in the order ``otalink --help`` lists them.
GROUPS: tuple[ModuleType, ...] = (
    repo,
    server,
    tufclient,
    agent,
    user,
    sim,
    demo,
    flash,
    line,
    device,
)


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every command group registered."""
    parser = argparse.ArgumentParser(prog="otalink", description="Over-the-air updates for ECUs.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in GROUPS:
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
