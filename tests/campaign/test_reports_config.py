"""Signed vehicle manifests queued while the server is away and sent later; config parsing."""

from __future__ import annotations

import base64
import json
import socket
from pathlib import Path

import httpx
import nacl.signing
import pytest
from otalink.host.campaign import reports as rep
from otalink.host.campaign.errors import ConfigError
from otalink.host.config import load_config, parse_config
from otalink.host.server.app import start_server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_manifest_queued_offline_then_sent(tmp_path: Path) -> None:
    key = rep.load_or_create_key(tmp_path / "gw.key")
    assert rep.load_or_create_key(tmp_path / "gw.key").encode() == key.encode()  # persisted
    ecu = nacl.signing.SigningKey.generate()
    body = b"\x8d\x01exact-report-bytes"
    entry = rep.ecu_entry("bms", body, ecu.sign(body).signature, True)
    manifest = rep.build_manifest("VIN9", "c1", {"state": "succeeded"}, [entry], 1.8e9)
    env = rep.sign_manifest(manifest, key)
    port = _free_port()
    box = rep.Outbox(tmp_path / "state", f"http://127.0.0.1:{port}", "VIN9")
    box.enqueue(env, rep.report_name("c1", "succeeded"))
    box.enqueue(env, rep.report_name("c1", "succeeded"))  # a restart re-queues: same name
    assert len(box.pending()) == 1
    sent, err = box.flush(timeout=1)
    assert sent == 0 and err is not None and err.startswith("no_connection")
    assert len(box.pending()) == 1  # kept on disk
    server = start_server(tmp_path / "www", port=port)
    try:
        sent, err = box.flush()
        assert (sent, err) == (1, None)
        assert box.pending() == []
        stored = httpx.get(f"{server.url}/reports/VIN9").json()
        assert len(stored) == 1
        doc = rep.verify_envelope(stored[0]["report"], bytes(key.verify_key))
        assert doc["vehicle_id"] == "VIN9" and doc["result"]["state"] == "succeeded"
        got = doc["ecus"][0]
        assert base64.b64decode(got["body"]) == body  # the ECU's exact bytes
        ecu.verify_key.verify(base64.b64decode(got["body"]), base64.b64decode(got["sig"]))
    finally:
        server.stop()
    tampered = dict(env, manifest=base64.b64encode(manifest.replace(b"VIN9", b"VIN8")).decode())
    with pytest.raises(nacl.exceptions.BadSignatureError):
        rep.verify_envelope(tampered, bytes(key.verify_key))


def test_config_full_and_errors(tmp_path: Path) -> None:
    pub = "11" * 32
    (tmp_path / "a.toml").write_text(
        f"""
[agent]
vehicle_id = "VIN1"
state_dir = "st"
api_port = 9000
[trust]
image_root = "r.json"
[policy]
min_soc_percent = 45
schedule_max_retries = 5
driver_assistance = ["Vehicle.ADAS.CruiseControl.IsActive",
                     "Vehicle.ADAS.LaneDepartureDetection.IsEnabled"]
[[ecu]]
ecu_id = "bms"
hardware_id = "bms-hw1"
port = "socket://127.0.0.1:7000"
public_key = "{pub}"
"""
    )
    c = load_config(tmp_path / "a.toml")
    assert c.state_dir == tmp_path / "st" and c.api_port == 9000
    assert c.policy.min_soc_percent == 45.0 and c.policy.schedule_max_retries == 5
    assert len(c.policy.driver_assistance) == 2
    assert c.ecus[0].public_key == bytes.fromhex(pub) and c.ecus[0].baud == 115200
    assert c.gateway_key_path == tmp_path / "st" / "gateway.key"
    assert c.trust == {"image_root": "r.json"}
    base = {"agent": {"vehicle_id": "V", "state_dir": "s"}}
    bad = [
        {"agent": {"state_dir": "s"}},
        {"agent": {"vehicle_id": "V", "state_dir": "s", "api_port": "80"}},
        {**base, "policy": {"min_soc_percent": True}},
        {**base, "ecu": [{"ecu_id": "a", "hardware_id": "h", "port": "p", "public_key": "zz"}]},
        {**base, "ecu": [{"ecu_id": "a", "hardware_id": "h", "port": "p"}]},
        {
            **base,
            "ecu": [{"ecu_id": "a", "hardware_id": "h", "port": "p", "public_key": pub}] * 2,
        },
    ]
    for doc in bad:
        with pytest.raises(ConfigError) as ei:
            parse_config(json.loads(json.dumps(doc)), tmp_path)
        assert ei.value.code == "config_invalid"
    (tmp_path / "b.toml").write_text("[agent\n")
    with pytest.raises(ConfigError):
        load_config(tmp_path / "b.toml")
