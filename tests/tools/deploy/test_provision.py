"""Provisioning: the ECU key on the host, its Director record, the agent's [[ecu]] table."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from otalink.host.gateway.config import load_config
from otalink.host.keys import public_key
from otalink.host.tools.deploy.errors import EcuExistsError, KeyFileError
from otalink.host.tools.deploy.provision import ecu_key, provision, read_record, valid_ecu_id


def test_provision_record_key_and_agent_config(tmp_path: Path) -> None:
    keys, registry = tmp_path / "keys", tmp_path / "director"
    rec = provision("bms-1", "bms-hw", keys_dir=keys, registry=registry, board="rp2")
    seed_file = keys / "bms-1.seed"
    assert seed_file.stat().st_mode & 0o777 == 0o600
    seed = bytes.fromhex(seed_file.read_text().strip())
    assert rec.public_key == public_key(seed)
    on_disk = read_record(registry / "ecus" / "bms-1.json")
    assert on_disk == rec
    raw = json.loads((registry / "ecus" / "bms-1.json").read_text())
    assert raw["keyid"] == rec.keyid.hex() and raw["board"] == "rp2"
    # Idempotent: the same ECU keeps its key.
    assert (
        provision("bms-1", "bms-hw", keys_dir=keys, registry=registry).public_key == rec.public_key
    )
    # The [[ecu]] table it prints is what the host agent's config loader accepts.
    toml = '[agent]\nvehicle_id = "VIN1"\nstate_dir = "state"\n\n' + rec.agent_toml("/dev/ttyUSB1")
    (tmp_path / "agent.toml").write_text(toml)
    cfg = load_config(tmp_path / "agent.toml")
    assert cfg.ecus[0].public_key == rec.public_key and cfg.ecus[0].port == "/dev/ttyUSB1"


def test_rotation_needs_force(tmp_path: Path) -> None:
    keys, registry = tmp_path / "keys", tmp_path / "director"
    first = provision("gw-2", "hw", keys_dir=keys, registry=registry)
    os.unlink(keys / "gw-2.seed")
    with pytest.raises(EcuExistsError):
        provision("gw-2", "hw", keys_dir=keys, registry=registry)
    rotated = provision("gw-2", "hw", keys_dir=keys, registry=registry, force=True)
    assert rotated.public_key != first.public_key
    assert read_record(registry / "ecus" / "gw-2.json").public_key == rotated.public_key


@pytest.mark.parametrize("bad", ["", "../etc", "a/b", "x" * 33, "é", "."])
def test_bad_ids_refused(bad: str) -> None:
    with pytest.raises(KeyFileError):
        valid_ecu_id(bad)


def test_missing_or_corrupt_key(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="provision"):
        ecu_key(tmp_path, "nokey", create=False)
    (tmp_path / "bad.seed").write_text("zz\n")
    with pytest.raises(KeyFileError):
        ecu_key(tmp_path, "bad")
    (tmp_path / "ecus").mkdir()
    (tmp_path / "ecus" / "r.json").write_text('{"format": "other"}')
    with pytest.raises(KeyFileError):
        read_record(tmp_path / "ecus" / "r.json")
