"""The ``otalink`` command: one parser, one module per command group.

Each group module exposes ``register(subparsers)`` and sets ``func`` on its parsers; handlers
return an exit code from the one table of ``otalink.host.errors`` (0 ok, 1 failure, 2 usage,
3 refused, 4 not found, 5 link/connection error; ``exit_code(exc)`` for an error).

A command imports only its own group: the groups pull in python-tuf, pydantic, httpx, the
gateway and the repository tools, and importing all of them cost ~1.5 s at every start of
``otalink status``. ``COMMANDS`` names the group of each command (tests/cli/test_cli_groups.py
checks it against what the groups register); help and an unknown command build the full parser.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from otalink.host.errors import EXIT_USAGE

# The command groups, in the order ``otalink --help`` lists them.
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

# Each top-level command and the group that registers it.
COMMANDS: dict[str, str] = {
    "repo": "repo",
    "server": "server",
    "tuf-client": "tufclient",
    "agent": "agent",
    "status": "user",
    "check": "user",
    "show": "user",
    "download": "user",
    "pause": "user",
    "resume": "user",
    "cancel": "user",
    "allow-cellular": "user",
    "preconditions": "user",
    "install": "user",
    "schedule": "user",
    "unschedule": "user",
    "history": "user",
    "ecus": "user",
    "events": "user",
    "sim": "sim",
    "demo": "demo",
    "flash": "flash",
    "line": "line",
    "device": "device",
}


def group(name: str) -> ModuleType:
    """The command group module ``name`` (one of ``GROUPS``)."""
    return importlib.import_module(f"{__name__}.{name}")


def build_parser(groups: Sequence[str] = GROUPS) -> argparse.ArgumentParser:
    """The parser with ``groups`` registered (default: every command group)."""
    parser = argparse.ArgumentParser(prog="otalink", description="Over-the-air updates for ECUs.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in groups:
        group(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``otalink`` console script."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    owner = COMMANDS.get(args_in[0]) if args_in else None
    parser = build_parser((owner,) if owner else GROUPS)
    args = parser.parse_args(args_in)
    func = getattr(args, "func", None)
    if func is None:  # a group without its subcommand: the whole command's help
        build_parser().print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code = func(args)
    except KeyboardInterrupt:
        return 130
    return int(code)


if __name__ == "__main__":
    raise SystemExit(main())
