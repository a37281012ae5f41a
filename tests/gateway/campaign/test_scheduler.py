"""Scheduling decisions with an injected clock: due, missed with reasons, retry, give up."""

from __future__ import annotations

from otalink.host.gateway.campaign import scheduler as sch
from otalink.host.gateway.campaign.table import Ev, State
from otalink.host.gateway.config import PolicyConfig

POL = PolicyConfig(schedule_retry_s=600, schedule_max_retries=2)


def test_not_due_before_time() -> None:
    s = sch.new_schedule(1000.0)
    d = sch.decide(s, 999.0, State.SCHEDULED, [], POL)
    assert d.event is None and d.schedule == s


def test_due_when_conditions_hold() -> None:
    d = sch.decide(sch.new_schedule(1000.0), 1000.0, State.SCHEDULED, [], POL)
    assert d.event == Ev.SCHEDULE_DUE and d.schedule is None


def test_missed_then_retry_then_give_up() -> None:
    s = sch.new_schedule(1000.0)
    d1 = sch.decide(s, 1001.0, State.SCHEDULED, ["park"], POL)
    assert d1.event == Ev.SCHEDULE_MISSED and d1.reasons == ["park"]
    assert d1.schedule is not None and d1.schedule.next_at == 1601.0
    assert d1.schedule.attempts == 1
    assert sch.decide(d1.schedule, 1600.0, State.SCHEDULED, ["park"], POL).event is None
    d2 = sch.decide(d1.schedule, 1601.0, State.SCHEDULED, ["park", "battery"], POL)
    assert d2.event == Ev.SCHEDULE_MISSED and d2.schedule is not None
    assert [m.reasons for m in d2.schedule.misses] == [("park",), ("park", "battery")]
    d3 = sch.decide(d2.schedule, 2201.0, State.SCHEDULED, ["park"], POL)
    assert d3.event == Ev.SCHEDULE_GAVE_UP and d3.schedule is None


def test_retry_succeeds_when_fixed() -> None:
    d1 = sch.decide(sch.new_schedule(0.0), 0.0, State.SCHEDULED, ["navigation"], POL)
    assert d1.schedule is not None
    d2 = sch.decide(d1.schedule, 600.0, State.SCHEDULED, [], POL)
    assert d2.event == Ev.SCHEDULE_DUE


def test_download_not_finished_is_a_miss() -> None:
    d = sch.decide(sch.new_schedule(5.0), 5.0, State.DOWNLOAD_PAUSED, ["no_connection"], POL)
    assert d.event == Ev.SCHEDULE_MISSED
    assert d.reasons == ["download_incomplete", "no_connection"]


def test_other_states_ignore_schedule() -> None:
    d = sch.decide(sch.new_schedule(5.0), 50.0, State.INSTALLING, [], POL)
    assert d.event is None
