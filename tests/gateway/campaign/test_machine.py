"""The tables: every transition row, every illegal pair refused, atomic persistence, the loop
guard's persisted counter, and the import-time checks that every action, step and command row
is handled."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest
from otalink.host.errors import Conflict
from otalink.host.gateway.campaign import record as rc
from otalink.host.gateway.campaign import table as tb
from otalink.host.gateway.campaign.agent import HANDLERS
from otalink.host.gateway.campaign.machine import Fired, Machine
from otalink.host.gateway.campaign.table import (
    COMMANDS,
    PONR_STATES,
    STEPS,
    TABLE,
    Action,
    Ev,
    State,
    legal_events,
)
from otalink.host.gateway.campaign.workers.install import STEP_HANDLERS

CAMPAIGN = Path(__file__).resolve().parents[3] / "host" / "gateway" / "campaign"


def _machine_in(tmp_path: Path, state: State) -> Machine:
    path = tmp_path / "campaign.json"
    rc.dump(path, rc.CampaignRecord(state=state))
    return Machine(path, lambda: 1000.0)


@pytest.mark.parametrize(("state", "ev"), sorted(TABLE, key=lambda k: (k[0].value, k[1].value)))
def test_every_row(tmp_path: Path, state: State, ev: Ev) -> None:
    m = _machine_in(tmp_path, state)
    seen: list[Fired] = []
    m.on_transition = seen.append
    tr = m.fire(ev, "why", note={"code": "x.y"})
    assert tr is TABLE[(state, ev)]
    assert m.state == tr.next
    on_disk = json.loads((tmp_path / "campaign.json").read_text())
    assert on_disk["version"] == rc.RECORD_VERSION
    assert on_disk["state"] == tr.next.value
    assert on_disk["reason"] == "why"
    assert on_disk["history"][-1]["event"] == ev.value
    assert on_disk["history"][-1]["from"] == state.value
    assert on_disk["history"][-1]["code"] == "x.y"
    assert [(f.prev, f.ev, f.record.state) for f in seen] == [(state, ev, tr.next)]
    assert seen[0].transition.actions == tr.actions
    # a fresh Machine on the same file sees the same state (the restart path)
    assert Machine(tmp_path / "campaign.json", lambda: 0.0).state == tr.next


ILLEGAL = [(s, e) for s in State for e in Ev if (s, e) not in TABLE]


@pytest.mark.parametrize(("state", "ev"), ILLEGAL)
def test_illegal_refused_and_nothing_changes(tmp_path: Path, state: State, ev: Ev) -> None:
    m = _machine_in(tmp_path, state)
    before = (tmp_path / "campaign.json").read_bytes()
    with pytest.raises(Conflict) as ei:
        m.fire(ev, "x", images={"bms": "/changed"})
    assert ei.value.code == "campaign.illegal_in_state"
    assert ei.value.state == state.value
    assert m.state == state
    assert m.record().images is None
    assert (tmp_path / "campaign.json").read_bytes() == before
    assert m.try_fire(ev, "x") is False


def test_every_state_reachable_and_leavable() -> None:
    reach = {State.IDLE}
    frontier = [State.IDLE]
    while frontier:
        s = frontier.pop()
        for ev in legal_events(s):
            n = TABLE[(s, ev)].next
            if n not in reach:
                reach.add(n)
                frontier.append(n)
    assert reach == set(State)
    for s in State:  # no stuck state: every state has a way out
        assert any(TABLE[(s, e)].next != s for e in legal_events(s)), s


def test_point_of_no_return_only_via_activation() -> None:
    into_ponr = {(s, e) for (s, e), tr in TABLE.items() if tr.next in PONR_STATES}
    entries = {(s, e) for (s, e) in into_ponr if s not in PONR_STATES}
    assert entries == {(State.INSTALLING, Ev.POINT_OF_NO_RETURN)}
    # nothing after the PONR goes back to a pre-install state or is a cancel
    for (s, e), tr in TABLE.items():
        if s in PONR_STATES:
            assert e != Ev.CANCEL
            assert tr.next in PONR_STATES or tr.next.value.startswith(("succeeded", "failed"))


def test_before_ponr_stops_return_to_downloaded() -> None:
    for ev in (Ev.PRECONDITION_BROKEN, Ev.INSTALL_FAILED, Ev.CANCEL):
        assert TABLE[(State.INSTALLING, ev)].next == State.DOWNLOADED


def test_every_final_transition_reports() -> None:
    for (_s, _e), tr in TABLE.items():
        if tr.next in tb.TERMINAL and tr.next != _s and _e != Ev.CHECK_NONE:
            assert Action.REPORT in tr.actions, (_s, _e)


def test_every_action_step_and_command_row_is_handled() -> None:
    assert set(HANDLERS) == set(Action)
    assert set(STEP_HANDLERS) == set(tb.Step) == set(STEPS.values())
    for cmd, rows in COMMANDS.items():
        for st, order in rows.items():
            assert order.ev is None or (st, order.ev) in TABLE, (cmd, st)


def _run_edited(tmp: Path, path: Path, old: str, new: str) -> None:
    """Run a module's source with one line changed, as a copy in ``tmp`` (its import-time
    checks run too)."""
    text = path.read_text()
    assert old in text
    edited = tmp / path.name
    edited.write_text(text.replace(old, new))
    runpy.run_path(str(edited), run_name="otalink_edited")


def test_a_missing_action_handler_fails_at_import(tmp_path: Path) -> None:
    agent = CAMPAIGN / "agent.py"
    _run_edited(tmp_path, agent, "", "")  # the unedited copy runs
    with pytest.raises(TypeError, match="report"):
        _run_edited(tmp_path, agent, "    Action.REPORT: _report,\n", "")


def test_a_missing_step_handler_fails_at_import(tmp_path: Path) -> None:
    install = CAMPAIGN / "workers" / "install.py"
    _run_edited(tmp_path, install, "", "")
    with pytest.raises(TypeError, match="verify"):
        _run_edited(tmp_path, install, "    Step.VERIFY: Installer._verify,\n", "")


def test_a_command_row_the_table_refuses_fails_at_import(tmp_path: Path) -> None:
    _run_edited(tmp_path, CAMPAIGN / "table.py", "", "")
    with pytest.raises(TypeError, match="not in TABLE"):
        _run_edited(
            tmp_path,
            CAMPAIGN / "table.py",
            'Command.PAUSE: {S.DOWNLOADING: Order(Ev.DOWNLOAD_PAUSE, "user")',
            'Command.PAUSE: {S.DOWNLOADING: Order(Ev.DOWNLOAD_RESUME, "user")',
        )


def test_corrupt_state_file_fails_loudly_and_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "campaign.json"
    path.write_text(json.dumps({"version": 2, "state": "bogus"}))
    with pytest.raises(ValueError) as ei:
        Machine(path, lambda: 0.0)
    assert isinstance(ei.value, rc.RecordError) and ei.value.code == "campaign.record_invalid"
    assert json.loads(path.read_text())["state"] == "bogus"  # nothing overwritten


def test_persist_is_atomic_no_temp_left(tmp_path: Path) -> None:
    m = Machine(tmp_path / "campaign.json", lambda: 0.0)
    for ev in (Ev.CHECK_FOUND, Ev.DOWNLOAD_START, Ev.DOWNLOAD_PAUSE, Ev.DOWNLOAD_RESUME):
        m.fire(ev)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["campaign.json"]
    assert m.record().seq == 4
    assert m.record().campaign_id  # a new campaign id when an update becomes available


def test_loop_counter_is_persisted_per_state(tmp_path: Path) -> None:
    path = tmp_path / "campaign.json"
    rc.dump(path, rc.CampaignRecord(state=State.INSTALLING_COMMITTED))
    m = Machine(path, lambda: 5.0)
    assert m.count_attempt(State.INSTALLING_COMMITTED).count == 1
    m.attempt_failed(State.INSTALLING_COMMITTED, "RuntimeError")
    assert m.count_attempt(State.INSTALLING_COMMITTED).count == 2
    # a restarted host continues the count (a host dying in a state is a loop too)
    m2 = Machine(path, lambda: 6.0)
    loop = m2.count_attempt(State.INSTALLING_COMMITTED)
    assert (loop.count, loop.error) == (3, "RuntimeError")
    # leaving the state resets it
    m2.fire(Ev.REBOOT_SENT)
    assert m2.record().loop is None
    assert Machine(path, lambda: 7.0).count_attempt(State.RESTARTING).count == 1


def test_event_log_survives_a_torn_line(tmp_path: Path) -> None:
    from otalink.host.gateway.campaign.events import EventLog

    path = tmp_path / "events.jsonl"
    log = EventLog(path, lambda: 5.0)
    log.append("a", {"x": 1})
    log.append("b")
    with path.open("a") as f:
        f.write('{"id": 3, "ts": 5.0, "type": "tor')  # the process died mid-write
    log2 = EventLog(path, lambda: 6.0)
    assert log2.last_id == 2
    assert log2.append("c") == 3
    assert [e["type"] for e in EventLog(path, lambda: 7.0).since(0)] == ["a", "b", "c"]
    sub = log2.subscribe(since_id=1)
    got = sub.get(timeout=1)
    assert got is not None and got["type"] == "b"
    log2.append("d")
    assert [sub.get(timeout=1), sub.get(timeout=1)] == log2.since(2)
    sub.close()
