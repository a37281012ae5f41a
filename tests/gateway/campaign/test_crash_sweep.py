"""Crash sweep: SIGKILL the host agent at >= 30 points of campaigns, restart it each time.

The ECUs (real device agents under MicroPython, on paced pty lines) keep running; the host
process dies without any cleanup. After every restart the agent must continue from its persisted
state: in the end every ECU runs the new image (confirmed), no ECU received its image twice (each
transfer resumes at or near the offset the previous one reached; nothing is transferred again
once verified), and each campaign is reported exactly once.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from otalink.host.gateway.campaign.inventory import SlotState
from otalink.host.sim.ecusim import board_profile

from tests.gateway.campaign.vehicle import Vehicle

ROOT = Path(__file__).resolve().parents[3]
PAD = 8 * 1024  # random bundles at 115200 baud: transfers long enough to cut in the middle
# Where a campaign's kills land: (state, delay after the restarted agent started or after the
# state was entered). When the campaign is already past an entry's state, it cuts there.
PLAN = (
    ("available", 0.0),
    ("downloading", 0.0),
    ("installing", 0.0),
    ("installing", 0.1),
    ("installing", 0.2),
    ("installing", 0.35),
    ("installing", 0.45),
    ("installing", 0.7),
    ("installing_committed", 0.0),
    ("installing_committed", 0.02),
    ("installing_committed", 0.06),
    ("restarting", 0.0),
    ("restarting", 0.05),
    ("restarting", 0.12),
    ("restarting", 0.2),
    ("verifying", 0.0),
    ("verifying", 0.03),
    ("verifying", 0.08),
    ("verifying", 0.15),
)
ORDER = {
    "idle": 0,
    "available": 1,
    "downloading": 2,
    "download_paused": 2,
    "downloaded": 3,
    "awaiting_confirmation": 3,
    "installing": 4,
    "installing_committed": 5,
    "restarting": 6,
    "verifying": 7,
}
CAMPAIGNS = (("1.0", 1), ("2.0", 2))  # 2 x 19 kill points

IGNORED = {"agent_started", "inventory", "ecu_unreachable", "agent_error"}
# the device's durable offset trails what it ACKed by at most a window (the unix board's)
WINDOW_SLACK = board_profile("unix")["link"]["window"]


@pytest.fixture
def vehicle(tmp_path: Path, mpy_tree: Path) -> Iterator[Vehicle]:
    v = Vehicle(tmp_path, ecu_ids=("bms", "adas"), baud=115200)
    try:
        yield v
    finally:
        v.stop()


def _events(path: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if not path.exists():
        return out
    for raw in path.read_text().splitlines():
        try:
            out.append(json.loads(raw))
        except ValueError:
            pass  # a line torn by the kill
    return out


def _state(v: Vehicle) -> str:
    try:
        return str(json.loads((v.root / "state" / "campaign.json").read_text())["state"])
    except FileNotFoundError:
        return "idle"


class Host:
    """The host agent as a real process per run, forked from a pre-imported zygote."""

    def __init__(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.zygote = subprocess.Popen(
            [sys.executable, "-m", "tests.gateway.campaign.driver", "--zygote"],
            cwd=str(ROOT),
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.pid = 0

    def spawn(self, config: Path, version: str) -> int:
        assert self.zygote.stdin and self.zygote.stdout
        self.zygote.stdin.write(f"run {config} {version}\n")
        self.zygote.stdin.flush()
        word, pid = self.zygote.stdout.readline().split()
        assert word == "pid"
        self.pid = int(pid)
        return self.pid

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        # a zombie (exited, not yet reaped by the zygote) is not alive either
        with open(f"/proc/{self.pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"

    def kill(self) -> int:
        os.kill(self.pid, signal.SIGKILL)
        return self.wait()

    def wait(self) -> int:
        assert self.zygote.stdout
        word, rc = self.zygote.stdout.readline().split()
        assert word == "exit"
        return int(rc)

    def close(self) -> None:
        assert self.zygote.stdin
        self.zygote.stdin.close()
        self.zygote.wait(10)


def _sweep(v: Vehicle, host: Host, version: str, rng: random.Random) -> tuple[int, list[str]]:
    """Run one campaign to its end, killing the host at the PLAN's points on the way."""
    evpath = v.root / "state" / "events.jsonl"
    killed_in: list[str] = []
    i = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        start_count = len(_events(evpath))
        host.spawn(v.config_path, version)
        killed = False
        while i < len(PLAN) and not killed:
            st = _state(v)
            if st not in ORDER:  # a final state: of the last campaign, or this one (exits)
                if not host.alive():
                    break
                time.sleep(0.003)
                continue
            target, delay = PLAN[i]
            started = any(e["type"] == "agent_started" for e in _events(evpath)[start_count:])
            if started and ORDER[st] >= ORDER[target]:  # a passed point cuts where it is
                time.sleep(delay + rng.uniform(0, 0.005))
                if host.alive():
                    rc = host.kill()
                    if rc != -signal.SIGKILL:  # it ended by itself just before the kill landed
                        assert rc == 0, rc
                        return rc, killed_in
                    killed_in.append(_state(v))
                    i += 1
                    killed = True
                    break
            if not host.alive():
                break
            time.sleep(0.003)
        if not killed:
            return host.wait(), killed_in
    raise AssertionError("campaign did not end")


def _check_no_double_flash(evs: list[dict[str, Any]], ecu: str) -> None:
    mine = [x for x in evs if x["data"].get("ecu_id") == ecu]
    done = [i for i, x in enumerate(mine) if x["type"] == "ecu_transfer_done"]
    assert len(done) <= 1, ecu
    if done:  # once verified, never transferred again
        assert not [x for x in mine[done[0] :] if x["type"] == "ecu_transfer_start"], ecu
    reached = 0
    fresh = 0
    total = 0
    for x in mine:
        if x["type"] == "ecu_transfer_start":
            total = int(x["data"]["total"])  # wire bytes (the client may deflate)
            off = int(x["data"]["offset"])
            fresh += off == 0
            assert off >= reached - WINDOW_SLACK, (ecu, off, reached)  # no progress lost
            reached = max(reached, off)
        elif x["type"] == "install_progress" and "offset" in x["data"]:
            reached = max(reached, int(x["data"]["offset"]))
    assert reached >= total - WINDOW_SLACK, (ecu, reached, total)
    assert fresh <= 2, (ecu, fresh)  # a kill before the first durable write may restart at 0


def test_kill_host_at_30_points_or_more(vehicle: Vehicle) -> None:
    rng = random.Random(4)
    evpath = vehicle.root / "state" / "events.jsonl"
    all_kills: list[str] = []
    host = Host()
    for version, counter in CAMPAIGNS:
        first = len(_events(evpath))
        images = vehicle.release(version, counter, pad=PAD)
        rc, killed_in = _sweep(vehicle, host, version, rng)
        assert rc == 0 and _state(vehicle) == "succeeded", (version, rc, killed_in)
        all_kills += killed_in
        ecus = json.loads((vehicle.root / "state" / "ecus.json").read_text())
        evs = _events(evpath)[first:]
        for e in vehicle.ecu_ids:
            assert ecus[e]["version"] == version, ecus[e]
            assert ecus[e]["active_state"] == SlotState.CONFIRMED, ecus[e]
            assert len(images[e]) > PAD
            _check_no_double_flash(evs, e)
            confirms = [x for x in evs if x["type"] == "ecu_confirm" and x["data"]["ecu_id"] == e]
            assert 1 <= len(confirms) <= 3, (e, confirms)
    host.close()
    print("kill points:", len(all_kills), all_kills)
    assert len(all_kills) >= 30
    # the kills landed all along the campaign, before and after the point of no return
    seen = set(all_kills)
    assert {"installing", "installing_committed", "restarting", "verifying"} <= seen, all_kills
    # each campaign reported exactly once (queued on disk, then sent)
    reports = sorted(p.name for p in (vehicle.root / "state" / "reports").rglob("*.json"))
    assert len(reports) == len(CAMPAIGNS), reports
    assert all(p.endswith("-succeeded.json") for p in reports)
