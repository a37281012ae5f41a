"""The transition table: every row, every illegal pair refused, atomic persistence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from otalink.host.campaign.errors import Conflict
from otalink.host.campaign.machine import (
    PONR_STATES,
    TABLE,
    Ev,
    Machine,
    State,
    fresh_record,
    legal_events,
)


def _machine_in(tmp_path: Path, state: State) -> Machine:
    rec = fresh_record()
    rec["state"] = state.value
    path = tmp_path / "campaign.json"
    path.write_text(json.dumps(rec))
    return Machine(path, lambda: 1000.0)


@pytest.mark.parametrize(("state", "ev"), sorted(TABLE, key=lambda k: (k[0].value, k[1].value)))
def test_every_row(tmp_path: Path, state: State, ev: Ev) -> None:
    m = _machine_in(tmp_path, state)
    seen: list[tuple[State, Ev, str]] = []
    m.on_transition = lambda cur, e, tr, rec: seen.append((cur, e, rec["state"]))
    tr = m.fire(ev, "why", history={"k": 1})
    assert tr is TABLE[(state, ev)]
    assert m.state == tr.next
    on_disk = json.loads((tmp_path / "campaign.json").read_text())
    assert on_disk["state"] == tr.next.value
    assert on_disk["reason"] == "why"
    assert on_disk["history"][-1]["event"] == ev.value
    assert on_disk["history"][-1]["from"] == state.value
    assert seen == [(state, ev, tr.next.value)]
    # a fresh Machine on the same file sees the same state (the restart path)
    assert Machine(tmp_path / "campaign.json", lambda: 0.0).state == tr.next


ILLEGAL = [(s, e) for s in State for e in Ev if (s, e) not in TABLE]


@pytest.mark.parametrize(("state", "ev"), ILLEGAL)
def test_illegal_refused_and_nothing_changes(tmp_path: Path, state: State, ev: Ev) -> None:
    m = _machine_in(tmp_path, state)
    before = (tmp_path / "campaign.json").read_bytes()
    with pytest.raises(Conflict) as ei:
        m.fire(ev, "x", updates={"plan": "changed"})
    assert ei.value.code == "illegal_in_state"
    assert ei.value.state == state.value
    assert m.state == state
    assert m.get("plan") is None
    assert (tmp_path / "campaign.json").read_bytes() == before


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


def test_corrupt_state_file_fails_loudly(tmp_path: Path) -> None:
    rec = fresh_record()
    rec["state"] = "bogus"
    (tmp_path / "campaign.json").write_text(json.dumps(rec))
    with pytest.raises(ValueError):
        Machine(tmp_path / "campaign.json", lambda: 0.0)


def test_persist_is_atomic_no_temp_left(tmp_path: Path) -> None:
    m = Machine(tmp_path / "campaign.json", lambda: 0.0)
    for ev in (Ev.CHECK_FOUND, Ev.DOWNLOAD_START, Ev.DOWNLOAD_PAUSE, Ev.DOWNLOAD_RESUME):
        m.fire(ev)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["campaign.json"]
    assert m.record()["seq"] == 4
    assert m.record()["campaign_id"]  # a new campaign id when an update becomes available


def test_event_log_survives_a_torn_line(tmp_path: Path) -> None:
    from otalink.host.campaign.events import EventLog

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
    assert sub.get(timeout=1)["type"] == "b"
    log2.append("d")
    assert sub.get(timeout=0)["type"] == "c"
    assert sub.get(timeout=1)["type"] == "d"
    sub.close()
