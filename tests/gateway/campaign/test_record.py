"""The campaign record: the typed, versioned object and its migration from version-1 files.

``data/v1-*.json`` were written by the agent of commit d955c95 (``host/agent.py`` with
``host/campaign/machine.py``, record version 1: a free dict with the plan as JSON text inside the
JSON) while it ran real campaigns: two ECUs under the MicroPython unix port on pty lines, the
update server and TUF repositories of that commit's ``tests/campaign/vehicle.py``:
``v1-scheduled`` (downloaded, install scheduled), ``v1-restarting`` (copied when the campaign
entered ``restarting``, after the point of no return), ``v1-succeeded`` and ``v1-rolled-back``
(the second campaign, one ECU's self-test failing).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from otalink.host.gateway.campaign import record as rc
from otalink.host.gateway.campaign.agent import Agent
from otalink.host.gateway.campaign.machine import Machine
from otalink.host.gateway.campaign.table import Ev, State
from otalink.host.gateway.config import AgentConfig, EcuConfig
from otalink.host.gateway.update.types import UpdatePlan

DATA = Path(__file__).with_name("data")
V1 = sorted(DATA.glob("v1-*.json"))


def _v1(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DATA / name).read_text())
    return doc


def test_the_fixtures_are_version_1_files() -> None:
    assert [p.name for p in V1] == [
        "v1-restarting.json",
        "v1-rolled-back.json",
        "v1-scheduled.json",
        "v1-succeeded.json",
    ]
    for p in V1:
        doc = json.loads(p.read_text())
        assert doc["version"] == 1 and isinstance(doc["plan"], str)  # JSON text in the JSON


@pytest.mark.parametrize("path", V1, ids=lambda p: p.stem)
def test_v1_migrates_field_by_field(path: Path) -> None:
    old = json.loads(path.read_text())
    rec = rc.parse(old)
    assert rec.version == 2
    assert rec.state == State(old["state"]) and rec.reason == old["reason"]
    assert (rec.since, rec.seq, rec.campaign_id) == (old["since"], old["seq"], old["campaign_id"])
    # the plan is an object now: the same plan the update layer encoded
    assert rec.plan == UpdatePlan.from_json(old["plan"])
    doc = rc.to_json(rec)
    assert isinstance(doc, dict) and doc["plan"] == json.loads(old["plan"])
    assert rec.images == old.get("images")
    if old.get("schedule"):
        assert rec.schedule is not None
        assert rec.schedule.model_dump(mode="json") == old["schedule"]
    else:
        assert rec.schedule is None
    assert {i: p.model_dump(exclude_none=True) for i, p in rec.install.items()} == old["install"]
    if old.get("result"):
        assert rec.result is not None
        got = rec.result.model_dump(mode="json")
        sent = {k: None for k in rc.DELIVERY_FIELDS}  # what each ECU was sent: unknown in v1
        old_ecus = old["result"].get("ecus", {})
        assert got == {**old["result"], "ecus": {i: {**e, **sent} for i, e in old_ecus.items()}}
    assert rec.finished_plans == tuple(old.get("finished_plans", ()))
    assert rec.report_queued == old.get("report_queued", False)
    assert len(rec.history) == len(old["history"])
    for new, h in zip(rec.history, old["history"], strict=True):
        assert new.model_dump(mode="json", by_alias=True, exclude_none=True) == {
            k: v for k, v in h.items() if v is not None
        }
    assert rec.loop is None


@pytest.mark.parametrize("path", V1, ids=lambda p: p.stem)
def test_a_migrated_record_round_trips_through_the_one_codec(path: Path, tmp_path: Path) -> None:
    rec = rc.parse(json.loads(path.read_text()))
    out = tmp_path / "campaign.json"
    rc.dump(out, rec)
    assert json.loads(out.read_text())["version"] == 2
    assert rc.load(out) == rec


def test_an_agent_resumes_a_v1_campaign_and_writes_v2(tmp_path: Path) -> None:
    """The agent starts on the version-1 file of a scheduled campaign, shows it as before, and
    the first change writes the record as version 2."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "campaign.json").write_bytes((DATA / "v1-scheduled.json").read_bytes())
    old = _v1("v1-scheduled.json")
    cfg = AgentConfig(
        vehicle_id="VIN-TEST-1",
        state_dir=state,
        check_interval_s=0,
        ecus=(EcuConfig("bms", "bms-hw1", "socket://127.0.0.1:9", bytes(32)),),
    )
    agent = Agent(cfg)
    st = agent.view.status()
    assert st.state == State.SCHEDULED and st.campaign_id == old["campaign_id"]
    assert st.schedule is not None and st.schedule.at_ts == old["schedule"]["at"]
    details = agent.view.update_details()
    assert details is not None and details.version == "1.0"
    assert {e.ecu_id for e in details.ecus} == {"adas", "bms"}
    assert json.loads((state / "campaign.json").read_text())["version"] == 1  # read only
    agent.commands.unschedule()
    on_disk = json.loads((state / "campaign.json").read_text())
    assert on_disk["version"] == 2 and on_disk["state"] == "downloaded"
    assert isinstance(on_disk["plan"], dict)
    assert [h["event"] for h in on_disk["history"]][-1] == "unschedule"
    assert len(on_disk["history"]) == len(old["history"]) + 1


@pytest.mark.parametrize(
    ("doc", "what"),
    [
        ([], "not a JSON object"),
        ({"version": 3, "state": "idle"}, "version 3"),
        ({"state": "idle"}, "version None"),
        ({"version": 1, "state": "idle", "plan": "{not json"}, "the plan is not JSON"),
        ({"version": 1, "state": "idle", "plan": "{}"}, "not an update plan"),
        ({"version": 2, "state": "nope"}, "not a campaign record"),
        ({"version": 2, "state": "idle", "surprise": 1}, "not a campaign record"),
        ({"version": 2, "state": "idle", "install": {"bms": {"phase": "x"}}}, "record"),
    ],
)
def test_what_is_not_a_record_is_refused(doc: object, what: str, tmp_path: Path) -> None:
    path = tmp_path / "campaign.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(rc.RecordError, match=what):
        Machine(path, lambda: 0.0)
    assert json.loads(path.read_text()) == doc  # nothing overwritten


def test_not_json_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "campaign.json"
    path.write_bytes(b'{"version": 2, "sta')
    with pytest.raises(rc.RecordError, match="not JSON"):
        rc.load(path)


def test_a_fresh_record_and_its_history_note(tmp_path: Path) -> None:
    m = Machine(tmp_path / "campaign.json", lambda: 42.0)
    assert m.record() == rc.CampaignRecord()
    m.fire(Ev.CHECK_FOUND, None, note={"plan_id": "p1", "version": "1.0"})
    m.remember("check_refused", "trust.rollback")
    h = [x.model_dump(mode="json", by_alias=True, exclude_none=True) for x in m.record().history]
    assert h == [
        {"ts": 42.0, "event": "check_found", "from": "idle", "to": "available", "plan_id": "p1",
         "version": "1.0"},
        {"ts": 42.0, "event": "check_refused", "reason": "trust.rollback"},
    ]  # fmt: skip
