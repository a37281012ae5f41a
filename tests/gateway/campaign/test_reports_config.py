"""Signed vehicle manifests queued while the server is away and sent later; config parsing."""

from __future__ import annotations

import base64
import json
import socket
from pathlib import Path

import httpx
import nacl.signing
import pytest
from otalink.host.errors import ConfigError
from otalink.host.gateway.campaign import reports as rep
from otalink.host.gateway.config import EcuConfig, PolicyConfig, load_config, parse_config
from otalink.host.retry import RetryPolicy
from otalink.host.tools.server.app import start_server
from pydantic import ValidationError


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


def test_outbox_retries_with_the_retry_policy(tmp_path: Path) -> None:
    """While the server is away the outbox waits base, 2 x base, ... up to the cap between
    flushes (on the caller's clock), and a delivered report resets the wait."""
    key = rep.load_or_create_key(tmp_path / "gw.key")
    env = rep.sign_manifest(rep.build_manifest("VIN9", "c2", {}, [], 1.8e9), key)
    port = _free_port()
    policy = RetryPolicy(base_s=10.0, cap_s=40.0, jitter=False)
    box = rep.Outbox(tmp_path / "state", f"http://127.0.0.1:{port}", "VIN9", retry=policy)
    assert box.flush_due(now=0.0) is None  # nothing queued: nothing tried
    box.enqueue(env, rep.report_name("c2", "succeeded"))
    now, waits = 1000.0, []
    for _ in range(4):
        result = box.flush_due(now=now, timeout=1)
        assert result is not None and result[1] is not None and result[1].startswith("no_conn")
        waits.append(box.next_try - now)
        assert box.flush_due(now=box.next_try - 0.001) is None  # still waiting
        now = box.next_try
    assert waits == [10.0, 20.0, 40.0, 40.0] and box.failures == 4
    server = start_server(tmp_path / "www", port=port)
    try:
        assert box.flush_due(now=now) == (1, None)
    finally:
        server.stop()
    assert box.failures == 0 and box.next_try == now and box.pending() == []


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
        assert ei.value.code == "config.invalid"
    (tmp_path / "b.toml").write_text("[agent\n")
    with pytest.raises(ConfigError):
        load_config(tmp_path / "b.toml")


_BASE = {"agent": {"vehicle_id": "V", "state_dir": "s"}}
_ECU = {"ecu_id": "a", "hardware_id": "h", "port": "p", "public_key": "11" * 32}


@pytest.mark.parametrize(
    ("doc", "named"),
    [
        ({"agent": {"vehicle_id": "V"}}, "agent.state_dir is missing"),
        ({"agent": {"vehicle_id": "", "state_dir": "s"}}, "agent.vehicle_id"),
        ({"agent": {**_BASE["agent"], "api_port": 70000}}, "agent.api_port"),
        ({"agent": {**_BASE["agent"], "check_interval_s": -1}}, "agent.check_interval_s"),
        ({**_BASE, "policy": {"min_soc_pecent": 50}}, "policy.min_soc_pecent is not a known key"),
        ({**_BASE, "policy": {"min_soc_percent": 130}}, "policy.min_soc_percent"),
        ({**_BASE, "policy": {"schedule_max_retries": 2.5}}, "policy.schedule_max_retries"),
        ({**_BASE, "policy": {"driver_assistance": "Vehicle.Speed"}}, "should be an array"),
        ({**_BASE, "trust": {"instruction_keys": ["ab"]}}, "trust.instruction_keys[0]"),
        ({**_BASE, "trust": {"image-root": "r.json"}}, "trust.image-root is not a known key"),
        ({**_BASE, "vehicle": {"simulated_live": "yes"}}, "vehicle.simulated_live"),
        ({**_BASE, "ecu": [_ECU, {**_ECU, "ecu_id": "b", "baud": 0}]}, "ecu[1].baud"),
        ({**_BASE, "ecu": [{**_ECU, "public_key": "11" * 31}]}, "ecu[0].public_key: must be 32"),
        ({**_BASE, "ecu": [_ECU, _ECU]}, "duplicate ecu_id a"),
        ({**_BASE, "agent": 5}, "agent: should be a table"),
    ],
)
def test_config_error_names_the_key(doc: dict[str, object], named: str) -> None:
    """A bad key is a ConfigError whose text names it as the file spells it; unknown keys (a
    typo would silently keep a default, e.g. the battery threshold) are refused too."""
    with pytest.raises(ConfigError) as ei:
        parse_config(doc, Path("/cfg"))
    assert ei.value.code == "config.invalid" and named in str(ei.value), str(ei.value)


def test_config_defaults_and_types(tmp_path: Path) -> None:
    c = parse_config({"agent": {"vehicle_id": "V", "state_dir": "/abs/st"}}, tmp_path)
    assert c.state_dir == Path("/abs/st") and c.base_dir == tmp_path
    assert (c.server_url, c.api_host, c.api_port, c.check_interval_s) == (
        "http://127.0.0.1:8080",
        "127.0.0.1",
        8765,
        3600.0,
    )
    assert c.policy == PolicyConfig() and c.ecus == () and c.trust == {}
    assert c.simulated_signals and c.simulated_live
    assert isinstance(c.policy.min_soc_percent, float)
    # the same models check what Python callers build (the demo, tests)
    assert PolicyConfig(min_soc_percent=50).min_soc_percent == 50.0
    with pytest.raises(ValidationError):
        EcuConfig("a", "h", "p", b"short")


def test_config_error_quotes_values_short() -> None:
    """A value from the file is quoted cut short: a file is untrusted input."""
    doc = {"agent": {"vehicle_id": "V", "state_dir": "s", "api_port": "9" * 5000}}
    with pytest.raises(ConfigError) as ei:
        parse_config(doc, Path("/cfg"))
    text = str(ei.value)
    assert text.startswith("agent.api_port: should be a valid integer (got '999") and "...)" in text
    assert len(text) < 200
