"""Every user command against a real running agent (HTTP), human and --json, with exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from otalink.host.cli import main
from otalink.host.cli.user import parse_time
from otalink.host.gateway.vehicle import signals as sig
from otalink.host.sim.demo.stack import DemoStack

from tests.sim.demo.conftest import StackFactory, api, wait_status

OTALINK = str(Path(sys.executable).parent / "otalink")


def run(capsys: pytest.CaptureFixture[str], url: str, *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--api", url])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], url: str, *argv: str) -> tuple[int, Any]:
    code, out, _ = run(capsys, url, *argv, "--json")
    return code, json.loads(out)


def test_read_commands(shared_stack: DemoStack, capsys: pytest.CaptureFixture[str]) -> None:
    url = shared_stack.url
    code, out, _ = run(capsys, url, "status")
    assert code == 0 and "state: available" in out and "Winter range update 2.0.0" in out
    code, st = run_json(capsys, url, "status")
    assert code == 0 and st["state"] == "available"

    code, out, _ = run(capsys, url, "show")
    assert code == 0
    assert "What's new:" in out and "range in cold weather" in out
    assert re.search(r"installation takes about \d+ (s|min)", out)
    assert "unavailable while installing: Driving" in out
    code, d = run_json(capsys, url, "show")
    assert code == 0 and d["version"] == "2.0.0" and len(d["ecus"]) == 3

    code, out, _ = run(capsys, url, "preconditions")
    assert code == 0 and out.count("[ok ]") == 8
    code, pre = run_json(capsys, url, "preconditions")
    assert code == 0 and all(p["ok"] for p in pre)

    code, out, _ = run(capsys, url, "ecus", "--refresh")
    assert code == 0 and all(f"ecu_id={e}" in out for e in ("bms", "body", "adas"))
    assert out.count("link: ok=True") == 3 and out.count("report_verified=True") == 3
    code, ecus = run_json(capsys, url, "ecus")
    assert code == 0 and [e["ecu_id"] for e in ecus] == ["bms", "body", "adas"]

    code, hist = run_json(capsys, url, "history")
    assert code == 0 and isinstance(hist, list)
    code, out, _ = run(capsys, url, "history")
    assert code == 0 and out.strip()

    code, out, _ = run(capsys, url, "events", "--since", "0", "--limit", "3")
    lines = [json.loads(x) for x in out.splitlines()]
    assert (
        code == 0 and len(lines) == 3 and [e["id"] for e in lines] == sorted(e["id"] for e in lines)
    )
    code, out, _ = run(capsys, url, "events", "--since", "0")  # without --follow: ends
    assert code == 0 and len(out.splitlines()) >= 3

    # --follow: replays what came after --since (live delivery is tested in test_api.py)
    last = shared_stack.agent.events.last_id
    with api(shared_stack) as c:
        c.put("/network/cellular", json={"allowed": False})
    types = [e["type"] for e in shared_stack.agent.events.since(last)]
    n = types.index("cellular_allowed") + 1
    code, out, _ = run(capsys, url, "events", "--follow", "--since", str(last), "--limit", str(n))
    evs = [json.loads(x) for x in out.splitlines()]
    assert code == 0 and [e["type"] for e in evs] == types[:n]
    assert all(e["id"] > last for e in evs)

    code, out, _ = run(capsys, url, "status", "--watch", "--timeout", "0.5")
    assert code == 0 and "state: available" in out

    code, out, _ = run(capsys, url, "check")
    assert code == 0 and "state: available" in out


def test_refusals_and_exit_codes(
    shared_stack: DemoStack, capsys: pytest.CaptureFixture[str]
) -> None:
    url = shared_stack.url
    # 3 refused: no --yes and no terminal to ask on
    code, out, err = run(capsys, url, "install", "--now")
    assert code == 3 and "confirmation" in err
    code, p = run_json(capsys, url, "install", "--now")
    assert code == 3 and p["code"] == "campaign.confirmation_required"
    # 3 refused: illegal in this state (nothing downloaded)
    code, p = run_json(capsys, url, "install", "--now", "--yes")
    assert code == 3 and p["code"] == "campaign.not_downloaded"
    code, p = run_json(capsys, url, "pause")
    assert code == 3 and p["code"] == "campaign.illegal_in_state"
    # 4 not found
    code, p = run_json(capsys, url, "unschedule")
    assert code == 4 and p["code"] == "campaign.no_schedule"
    # 2 usage
    code, p = run_json(capsys, url, "schedule", "25:99")
    assert code == 2 and p["code"] == "usage.invalid_time"
    with pytest.raises(SystemExit) as exc:
        main(["install", "--api", url])  # neither --now nor --at
    assert exc.value.code == 2
    # 3: a failing precondition makes `preconditions` exit 3 with the fix
    with api(shared_stack) as c:
        c.put("/signals", json={"signals": {sig.GEAR: 127}})
    try:
        code, out, _ = run(capsys, url, "preconditions")
        assert code == 3 and "[NOT] park" in out and "-> Shift to Park" in out
    finally:
        with api(shared_stack) as c:
            c.put("/signals", json={"signals": {sig.GEAR: sig.GEAR_PARK}})
    # 5: no agent there
    code, out, err = run(capsys, "http://127.0.0.1:9", "status")
    assert code == 5 and "cannot reach the agent" in err
    code, p = run_json(capsys, "http://127.0.0.1:9", "status")
    assert code == 5 and p["code"] == "api.unreachable"


def test_campaign_through_the_cli(
    make_stack: StackFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """download (bar) -> pause/resume -> allow-cellular -> schedule/unschedule -> install."""
    stack = make_stack(server_rate_bps=24 * 1024)
    url = stack.url
    code, st = run_json(capsys, url, "download")
    assert code == 0 and st["state"] in ("downloading", "awaiting_confirmation")
    code, st = run_json(capsys, url, "pause")
    assert code == 0 and st["state"] in ("download_paused", "awaiting_confirmation")
    code, out, _ = run(capsys, url, "status")
    assert code == 0
    if st["state"] == "download_paused":
        assert re.search(r"download \[#*-*\]\s+\d+\.\d %", out), out
        code, st = run_json(capsys, url, "resume")
        assert code == 0 and st["state"] in ("downloading", "awaiting_confirmation")
    code, out, _ = run(capsys, url, "download", "--wait", "--timeout", "60")
    assert code in (0, 3)  # already downloading is fine; the bar is drawn until it stops
    wait_status(stack, lambda s: s["state"] in ("downloaded", "awaiting_confirmation"))

    code, st = run_json(capsys, url, "allow-cellular")
    assert code == 0 and st["cellular_allowed"] is True
    code, st = run_json(capsys, url, "allow-cellular", "--no")
    assert code == 0 and st["cellular_allowed"] is False

    code, st = run_json(capsys, url, "install", "--at", "02:00")
    assert code == 0 and st["state"] == "scheduled" and st["schedule"]["at"]
    code, out, _ = run(capsys, url, "schedule", "+2h")
    assert code == 0 and "state: scheduled" in out and "scheduled: " in out
    code, st = run_json(capsys, url, "unschedule")
    assert code == 0 and st["state"] == "downloaded" and st["schedule"] is None

    code, out, _ = run(capsys, url, "install", "--now", "--yes")
    assert code == 0, out
    assert "result: succeeded" in out
    assert re.search(r"install  \[#+\] 100\.0 %", out), out  # overall bar reached 100 %
    assert re.search(r"  bms\s+\[#+", out)  # per-ECU bars
    code, ecus = run_json(capsys, url, "ecus")
    assert {e["version"] for e in ecus} == {"2.0.0"}
    code, p = run_json(capsys, url, "cancel")
    assert code == 3 and p["code"] == "campaign.illegal_in_state"
    code, hist = run_json(capsys, url, "history")
    assert code == 0 and len(hist) >= 3


def test_cancel_download_and_json_watch(
    make_stack: StackFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = make_stack(server_rate_bps=4 * 1024)
    url = stack.url
    with api(stack) as c:
        c.put("/signals", json={"signals": {sig.NETWORK: "none"}})
    code, st = run_json(capsys, url, "download")
    assert code == 0 and st["state"] == "download_paused" and st["reason"] == "no_connection"
    code, out, _ = run(capsys, url, "status")
    assert "download_paused (no_connection)" in out
    code, st = run_json(capsys, url, "cancel")
    assert code == 0 and st["state"] == "available"
    code, out, _ = run(capsys, url, "status", "--watch", "--json", "--timeout", "0.6")
    docs = [json.loads(x) for x in out.splitlines()]
    assert code == 0 and docs and all(d["state"] == "available" for d in docs)


def test_console_script(shared_stack: DemoStack) -> None:
    env = {**os.environ, "OTALINK_API": shared_stack.url}
    r = subprocess.run([OTALINK, "status", "--json"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["state"] == "available"
    r = subprocess.run(
        [OTALINK, "ecus", "--api", "http://127.0.0.1:9"], capture_output=True, text=True
    )
    assert r.returncode == 5 and "cannot reach the agent" in r.stderr


def test_parse_time() -> None:
    from datetime import datetime

    now = datetime(2026, 11, 27, 23, 30).astimezone()
    assert parse_time("02:00", now).hour == 2 and parse_time("02:00", now).day == 28
    assert parse_time("23:45", now).day == 27
    assert (parse_time("+30m", now) - now).total_seconds() == 1800
    assert parse_time("2026-12-01T02:00:00+00:00").isoformat() == "2026-12-01T02:00:00+00:00"
    for bad in ("24:00", "7pm", "+5d"):
        with pytest.raises(ValueError):
            parse_time(bad, now)
