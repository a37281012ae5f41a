"""``otalink agent --config`` (the daemon with the local API) and ``otalink sim set/get``."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from otalink.host.cli import main

from tests.gateway.campaign.vehicle import Vehicle, wait_for

ROOT = Path(__file__).resolve().parents[2]
OTALINK = str(Path(sys.executable).parent / "otalink")
GEAR = "Vehicle.Powertrain.Transmission.SelectedGear"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_daemon_with_sim_cli(
    tmp_path: Path, mpy_tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
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
        wait_for(up, 30, "agent API")
        capsys.readouterr()
        assert main(["sim", "set", GEAR, "127", "--api", api]) == 0
        assert "127" in capsys.readouterr().out
        assert main(["sim", "get", GEAR, "--api", api, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)[GEAR]["value"] == 127
        pre = httpx.get(api + "/api/v1/preconditions").json()
        park = next(p for p in pre if p["id"] == "park")
        assert park["ok"] is False and park["hint"] == "Shift to Park"
        assert main(["sim", "set", GEAR, "P", "--api", api]) == 0
        pre = httpx.get(api + "/api/v1/preconditions").json()
        assert next(p for p in pre if p["id"] == "park")["ok"] is True
        capsys.readouterr()
        assert main(["sim", "set", "Vehicle.Connectivity.Network", "5g", "--api", api]) == 3
        assert "vehicle.invalid_signal_value" in capsys.readouterr().err
        assert main(["sim", "set", "Vehicle.Nope.Thing", "1", "--api", api]) == 4
        assert main(["sim", "get", "--api", api]) == 0
        assert "Vehicle.Speed" in capsys.readouterr().out
        # the daemon's agent runs a real check against the update server
        v.release("1.0", 1)
        st = httpx.post(api + "/api/v1/check", timeout=20, headers={"X-Otalink": "1"}).json()
        assert st["state"] == "available"
        upd = httpx.get(api + "/api/v1/update").json()
        assert upd["ecus"][0]["to_version"] == "1.0"
    finally:
        proc.terminate()
        assert proc.wait(15) == 0
        v.stop()


def test_agent_bad_config_and_no_agent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "a.toml"
    cfg.write_text('[agent]\nvehicle_id = "V"\n')
    assert main(["agent", "--config", str(cfg)]) == 2
    assert "state_dir" in capsys.readouterr().err
    assert main(["agent", "--config", str(tmp_path / "missing.toml")]) == 2
    assert main(["sim", "get", "--api", "http://127.0.0.1:9"]) == 5
