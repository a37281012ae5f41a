"""The key options of ``otalink device``: Director, command and ECU public keys from hex or key
files, each through the one loader of ``otalink.host.keys`` (docs/hil.md "Keys")."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from otalink.host.tools.deploy.errors import KeyFileError

if TYPE_CHECKING:  # the CLI imports the profile models only when a command needs them
    from otalink.host.tools.deploy.profile import Board


def public_keys(items: list[str], option: str, private: bool = False) -> list[bytes]:
    """Public keys from the values of one option (hex or key files; ``private``: private key
    files only, e.g. ``--director-seed``), each through the one loader of otalink.host.keys."""
    from otalink.host.keys import BadKeyError, load_private_key, load_public_key, public_key

    keys: list[bytes] = []
    for item in items:
        try:
            keys.append(public_key(load_private_key(item)) if private else load_public_key(item))
        except BadKeyError as exc:
            raise KeyFileError(f"{option} {item}: {exc}") from exc
    return keys


def director_keys(args: argparse.Namespace) -> list[bytes]:
    keys = public_keys(args.director_key, "--director-key")
    keys += public_keys(args.director_seed, "--director-seed", private=True)
    if len(set(keys)) != len(keys):
        raise KeyFileError("the same Director key was given twice")
    if not keys:
        raise KeyFileError(
            "the agent needs a Director key: --director-key FILE (e.g. the .pub or .key "
            "`otalink repo keygen` writes, docs/hil.md Keys)"
        )
    if len(keys) > 8:
        raise KeyFileError("at most 8 Director keys")
    return keys


def command_keys(args: argparse.Namespace, board: Board) -> list[bytes] | None:
    """--command-key values; None = the board's default (the dev key on the unix board)."""
    from otalink.host.tools.deploy.deploy import default_command_keys

    keys = public_keys(args.command_key, "--command-key")
    if len(set(keys)) != len(keys):
        raise KeyFileError("the same command key was given twice")
    if len(keys) > 8:
        raise KeyFileError("at most 8 command keys")
    if not keys and not default_command_keys(board):
        raise KeyFileError(
            f"board {board.name} has no default command key: --command-key FILE (the key that "
            "signs ACTIVATE/REBOOT/CONFIRM/REVERT/ABORT; without one the ECU refuses them all)"
        )
    return keys or None
