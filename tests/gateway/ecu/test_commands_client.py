"""EcuClient's signed commands against the real agent (behind a LineSim), and the gateway's
command key setting."""

from __future__ import annotations

import os
from pathlib import Path

import nacl.signing
import pytest
from otalink.host.errors import ConfigError
from otalink.host.gateway.config import parse_config
from otalink.host.gateway.ecu import (
    DEV_COMMAND_SEED,
    EcuClient,
    EcuRejected,
    dev_command_key,
    signed_command,
)
from otalink.host.keys import KeyPair, keyid
from otalink.host.sim.line.rig import EcuRig
from otalink.protocol import codes, messages

from tests.gateway.ecu.conftest import RigFactory


def test_signed_command_layout() -> None:
    nonce = os.urandom(16)
    msg = signed_command(DEV_COMMAND_SEED, codes.MSG_CONFIRM, "bms-1", nonce)
    t, cmd, kid, sig = msg
    assert t == codes.MSG_CONFIRM and kid == dev_command_key().keyid
    assert kid == keyid(dev_command_key().public)
    assert messages.decode_command(cmd) == [1, codes.MSG_CONFIRM, "bms-1", nonce]
    nacl.signing.VerifyKey(dev_command_key().public).verify(cmd, sig)  # over exactly cmd
    assert messages.parse(messages.command(*msg)) == msg
    with pytest.raises(ValueError):
        signed_command(DEV_COMMAND_SEED, codes.MSG_BEGIN, "bms-1", nonce)


def test_commands_are_signed_over_the_ecu_nonce(rig: EcuRig) -> None:
    c = rig.client()
    info = c.hello()
    assert c.cmd_nonce == info.cmd_nonce and len(info.cmd_nonce) == 16
    assert c.abort() == 0  # nothing to abort, but authentic: RESULT OK
    after = c.cmd_nonce
    assert after is not None and after != info.cmd_nonce  # the RESULT named the next nonce
    assert c.status().cmd_nonce == after
    # a stale nonce (the ECU moved on behind our back): refused once, then signed afresh
    other = rig.client()
    assert other.abort() == 0
    assert c.cmd_nonce == after  # stale now
    assert c.abort() == 0
    assert c.cmd_nonce == c.status().cmd_nonce


def test_without_a_command_key_nothing_is_sent(rig: EcuRig) -> None:
    c = rig.client(command_key=None)
    c.hello()
    sent = c.transport.bytes_written
    with pytest.raises(EcuRejected) as ei:
        c.activate()
    assert ei.value.wire_code == codes.E_CMD_AUTH and "command key" in str(ei.value)
    assert c.transport.bytes_written == sent


def test_a_key_the_ecu_does_not_trust_is_refused(rig: EcuRig) -> None:
    c = rig.client(command_key=KeyPair.generate().seed)
    before = c.status()
    with pytest.raises(EcuRejected) as ei:
        c.abort()
    assert ei.value.wire_code == codes.E_CMD_AUTH and ei.value.code == "ecu_rejected.e_cmd_auth"
    assert c.status().cmd_nonce == before.cmd_nonce  # a refused command spends nothing


def test_an_ecu_trusting_another_command_key(rig_factory: RigFactory) -> None:
    gateway = KeyPair.generate()
    rig = rig_factory(command_key=gateway)
    assert rig.client().abort() == 0  # the rig's client signs with the gateway's key
    with pytest.raises(EcuRejected) as ei:
        rig.client(command_key=DEV_COMMAND_SEED).abort()  # the dev key is not trusted here
    assert ei.value.wire_code == codes.E_CMD_AUTH


def test_client_refuses_a_malformed_command_key() -> None:
    with pytest.raises(ValueError):
        EcuClient("loop://", command_key=b"short")


def _agent_toml(tmp: Path, extra: str) -> dict[str, object]:
    import tomllib

    return tomllib.loads(
        f'[agent]\nvehicle_id = "V1"\nstate_dir = "{tmp}/st"\n{extra}\n'
        '[[ecu]]\necu_id = "bms"\nhardware_id = "hw"\nport = "loop://"\n'
        f'public_key = "{"00" * 32}"\n'
    )


def test_gateway_command_key_setting(tmp_path: Path) -> None:
    assert parse_config(_agent_toml(tmp_path, ""), tmp_path).command_seed() == DEV_COMMAND_SEED
    key = KeyPair.generate()
    (tmp_path / "command.key").write_text(key.seed_hex + "\n")
    cfg = parse_config(_agent_toml(tmp_path, 'command_key = "command.key"'), tmp_path)
    assert cfg.command_key == tmp_path / "command.key" and cfg.command_seed() == key.seed
    (tmp_path / "raw.key").write_bytes(key.seed)
    cfg = parse_config(_agent_toml(tmp_path, 'command_key = "raw.key"'), tmp_path)
    assert cfg.command_seed() == key.seed
    for bad in ("missing.key", "short.key"):
        (tmp_path / "short.key").write_text("abcd\n")
        cfg = parse_config(_agent_toml(tmp_path, f'command_key = "{bad}"'), tmp_path)
        with pytest.raises(ConfigError):
            cfg.command_seed()
