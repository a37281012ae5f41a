"""Signed control commands (ACTIVATE, REBOOT, CONFIRM, REVERT, ABORT), host side.

Public interface (stable):
    DEV_COMMAND_SEED: bytes        the development command key's ed25519 seed (``host.keys``)
    dev_command_key() -> KeyPair   that key
    signed_command(seed, mtype, ecu_id, cmd_nonce) -> list[Any]
        the message ``[mtype, cmd, keyid, sig]``: ``cmd`` = the exact CBOR bytes of
        ``[1, mtype, ecu_id, cmd_nonce]``, ``sig`` = ed25519 by ``seed`` over exactly them,
        ``keyid`` = SHA-256(public)[:8] (docs/protocol.md "Signed commands")
    signed(seed, mtype, ecu_id, cmd_nonce) -> wire.Command   the same, as its typed message

The ECU accepts a command only if a key it trusts for commands (its config ``command_keys``)
signed it, for its own ecu_id and this command type, over the nonce it issued last (INFO /
STATUS / RESULT carry it); every accepted command replaces the nonce, so each signature is good
once.
"""

from __future__ import annotations

from typing import Any

from otalink.host.gateway.ecu.wire import COMMANDS, Command
from otalink.host.keys import DEV_COMMAND_SEED, KeyPair
from otalink.protocol import messages

__all__ = ["DEV_COMMAND_SEED", "dev_command_key", "signed", "signed_command"]


def dev_command_key() -> KeyPair:
    """The development command key (seed ``DEV_COMMAND_SEED``)."""
    return KeyPair(DEV_COMMAND_SEED)


def signed_command(seed: bytes, mtype: int, ecu_id: str, cmd_nonce: bytes) -> list[Any]:
    """The command message for ``mtype``, signed by ``seed`` over the ECU's ``cmd_nonce``."""
    if mtype not in messages.COMMANDS:
        raise ValueError(f"message type {mtype} is not a command")
    key = KeyPair(seed)
    cmd = bytes(messages.encode_command(mtype, ecu_id, cmd_nonce))
    return [mtype, cmd, key.keyid, key.sign(cmd)]


def signed(seed: bytes, mtype: int, ecu_id: str, cmd_nonce: bytes) -> Command:
    """``signed_command`` as its typed message (``wire.Activate`` ... ``wire.Abort``)."""
    _t, cmd, keyid, sig = signed_command(seed, mtype, ecu_id, cmd_nonce)
    return COMMANDS[mtype](cmd, keyid, sig)
