"""``otalink agent --config`` (daemon with the local API) and ``otalink sim set/get``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.campaign.vehicle import Vehicle, wait_for

ROOT = Path(__file__).resolve().parents[2]
OTALINK = str(Path(sys.executable).parent / "otalink")
GEAR = "Vehicle.Powertrain.Transmission.SelectedGear"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def daemon(tmp_path: Path, mpy_tree: Path) -> Iterator[tuple[Vehicle, str]]:
    v = Vehicle(tmp_path, ecu_ids=("bms",))
    port = _free_port()
    proc = subprocess.Popen(
        [OTALINK, "agent", "--config", str(v.config_path), "--port", str(port)],
        cwd=str(ROOT),
        stderr=subprocess.PIPE,
    )
    api = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(api + "/api/v1/status", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, 20, "agent API")
        yield v, api
    finally:
        proc.terminate()
        proc.wait(10)
        v.stop()


def _otalink(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OTALINK, *args], capture_output=True, text=True, timeout=30, env=dict(os.environ)
    )


def test_sim_set_get_and_errors(daemon: tuple[Vehicle, str]) -> None:
    _v, api = daemon
    r = _otalink("sim", "set", GEAR, "127", "--api", api)
    assert r.returncode == 0, r.stderr
    r = _otalink("sim", "get", GEAR, "--api", api, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[GEAR]["value"] == 127
    pre = httpx.get(api + "/api/v1/preconditions").json()
    park = next(p for p in pre if p["id"] == "park")
    assert park["ok"] is False and park["hint"] == "Shift to Park"
    assert _otalink("sim", "set", GEAR, "P", "--api", api).returncode == 0
    pre = httpx.get(api + "/api/v1/preconditions").json()
    assert next(p for p in pre if p["id"] == "park")["ok"] is True
    bad = _otalink("sim", "set", "Vehicle.Connectivity.Network", "5g", "--api", api)
    assert bad.returncode == 3 and "invalid_signal_value" in bad.stderr
    unknown = _otalink("sim", "set", "Vehicle.Nope.Thing", "1", "--api", api)
    assert unknown.returncode == 4, unknown.stderr
    r = _otalink("sim", "get", "--api", api)
    assert r.returncode == 0 and "Vehicle.Speed" in r.stdout


def test_daemon_runs_a_check_through_the_api(daemon: tuple[Vehicle, str]) -> None:
    v, api = daemon
    v.release("1.0", 1)
    st = httpx.post(api + "/api/v1/check", timeout=20).json()
    assert st["state"] == "available"
    upd = httpx.get(api + "/api/v1/update").json()
    assert upd["ecus"][0]["to_version"] == "1.0"


def test_agent_bad_config_is_usage_error(tmp_path: Path) -> None:
    cfg = tmp_path / "a.toml"
    cfg.write_text('[agent]\nvehicle_id = "V"\n')
    r = _otalink("agent", "--config", str(cfg))
    assert r.returncode == 2 and "state_dir" in r.stderr
    r = _otalink("sim", "get", "--api", "http://127.0.0.1:9")
    assert r.returncode == 5
