"""The key options of ``otalink device``: Director, command and ECU public keys from hex or key
files, each through the one loader of ``otalink.host.keys`` (docs/hil.md "Keys")."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from otalink.host.tools.deploy.errors import KeyFileError

if TYPE_CHECKING:  # the CLI imports the profile models only when a command needs them
    from otalink.host.tools.deploy.app import AppSigner
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


def add_app_args(d: argparse.ArgumentParser) -> None:
    """``deploy --app`` and the keys that sign the application's install."""
    d.add_argument(
        "--app",
        type=Path,
        default=None,
        metavar="PATH",
        help="the ECU's application (a .py file, or a folder with app.py): installed after the "
        "agent answers, as a signed update (needs --director-seed; docs/deploy.md)",
    )
    d.add_argument("--app-version", default="1.0.0", help="the application's release version")
    d.add_argument(
        "--command-seed",
        type=Path,
        default=None,
        metavar="FILE",
        help="command private key (PEM or hex seed) signing the --app install's ACTIVATE, REBOOT "
        "and CONFIRM (default on the unix board: the development command key)",
    )


def app_signer(args: argparse.Namespace, board: Board) -> AppSigner | None:
    """The keys that sign ``--app``'s install: the first --director-seed and --command-seed
    (the development command key where the board trusts it by default); None without --app
    or without a Director private key (deploy then refuses --app with its reason)."""
    from otalink.host.gateway.ecu.commands import DEV_COMMAND_SEED
    from otalink.host.keys import BadKeyError, load_private_key
    from otalink.host.tools.deploy.app import AppSigner
    from otalink.host.tools.deploy.deploy import default_command_keys

    if args.app is None or not args.director_seed:
        return None
    try:
        director = load_private_key(args.director_seed[0])
        if args.command_seed is not None:
            command = load_private_key(str(args.command_seed))
        elif default_command_keys(board):
            command = DEV_COMMAND_SEED
        else:
            raise KeyFileError(
                f"--app on board {board.name}: --command-seed FILE (the private command key that "
                "signs the install's ACTIVATE, REBOOT and CONFIRM)"
            )
    except BadKeyError as exc:
        raise KeyFileError(f"--app keys: {exc}") from exc
    return AppSigner(director, command)
