"""The Agent API against the real update server and real device agents: connectivity, cellular
permission, pause/resume, preconditions, a precondition breaking mid-install, cancel and the
point of no return, scheduling with an injected clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from otalink.host.errors import Conflict, Refused
from otalink.host.gateway.campaign.agent import Agent
from otalink.host.gateway.campaign.clock import ManualClock
from otalink.host.gateway.campaign.inventory import SlotState
from otalink.host.gateway.vehicle import signals as sig

from tests.gateway.campaign.vehicle import Vehicle, wait_for


@pytest.fixture
def vehicle(tmp_path: Path, mpy_tree: Path) -> Iterator[Vehicle]:
    v = Vehicle(tmp_path, ecu_ids=("bms",), baud=115200)
    try:
        yield v
    finally:
        v.stop()


@pytest.fixture
def agent(vehicle: Vehicle) -> Iterator[Agent]:
    a = Agent(vehicle.config())
    a.start()
    try:
        yield a
    finally:
        a.stop()


def _state(a: Agent) -> str:
    return str(a.view.status().state)


def _attempts(a: Agent) -> int | None:
    sched = a.view.status().schedule
    return None if sched is None else sched.attempts


def _types(a: Agent, t: str) -> list[dict[str, object]]:
    return [e for e in a.events.since(0) if e["type"] == t]


def test_no_connection_then_resumes_by_itself(vehicle: Vehicle, agent: Agent) -> None:
    vehicle.release("1.0", 1)
    agent.signals.set(sig.NETWORK, "none")
    with pytest.raises(Refused) as ei:
        agent.commands.check()
    assert ei.value.code == "campaign.no_connection"
    agent.signals.set(sig.NETWORK, "wifi")
    assert agent.commands.check().available is True
    agent.signals.set(sig.CONNECTIVITY, False)
    agent.commands.download_start()
    st = agent.view.status()
    assert (st.state, st.reason, st.network) == (
        "download_paused",
        "no_connection",
        "none",
    )
    # the screen offers scheduling while offline
    assert "schedule" in st.legal
    agent.signals.set(sig.CONNECTIVITY, True)
    wait_for(lambda: _state(agent) == "awaiting_confirmation", 20, "auto resume")
    hist = [h.event for h in agent.view.history()]
    assert "connection_lost" in hist and "connection_back" in hist


def test_cellular_needs_permission(vehicle: Vehicle, agent: Agent) -> None:
    vehicle.release("1.0", 1)
    agent.signals.set(sig.NETWORK, "cellular")
    agent.commands.check()
    agent.commands.download_start()
    st = agent.view.status()
    assert (st.state, st.reason) == ("download_paused", "cellular_not_allowed")
    assert st.network == "cellular" and st.cellular_allowed is False
    details = agent.view.update_details()
    assert details is not None and details.network_policy.cellular_needs_permission is True
    agent.commands.allow_cellular(True)
    wait_for(lambda: _state(agent) == "awaiting_confirmation", 20, "download over cellular")
    assert agent.view.status().cellular_allowed is True


def test_pause_and_resume_keep_the_bytes(vehicle: Vehicle, agent: Agent) -> None:
    vehicle.release("1.0", 1, pad=256 * 1024)
    vehicle.server.set_rate(400_000)
    agent.commands.check()
    agent.commands.download_start()
    wait_for(lambda: (agent.view.status().download.bytes) > 50_000, 20, "some bytes")
    agent.commands.download_pause()
    wait_for(lambda: agent.view.status().download.active is False, 10, "downloader stopped")
    st = agent.view.status()
    assert (st.state, st.reason) == ("download_paused", "user")
    with pytest.raises(Conflict):
        agent.commands.install(confirm=True)
    had = st.download.bytes
    vehicle.server.set_rate(None)
    agent.commands.download_resume()
    wait_for(lambda: _state(agent) == "awaiting_confirmation", 20, "download end")
    resumed = [e["data"]["resumed_from"] for e in _types(agent, "download_progress")]
    assert max(resumed) > 0 and max(resumed) <= had + 64 * 1024  # from the break, not from 0


def test_preconditions_refuse_then_break_mid_install(vehicle: Vehicle, agent: Agent) -> None:
    # ~70 KiB: the stop at 12 KiB is acted on long before the stream could end, even on a loaded
    # machine (with 20 KiB a slow tick once let the first transfer finish: one start, no resume)
    vehicle.release("1.0", 1, pad=64 * 1024)
    agent.commands.check()
    agent.commands.download_start()
    wait_for(lambda: _state(agent) == "awaiting_confirmation", 20, "download")
    agent.signals.set(sig.GEAR, 127)  # Drive
    agent.signals.set(sig.NAV_GUIDANCE, True)
    with pytest.raises(Refused) as ei:
        agent.commands.install(confirm=True)
    assert ei.value.code == "campaign.preconditions_not_met"
    assert [(f["id"], f["hint"]) for f in ei.value.failing] == [
        ("park", "Shift to Park"),
        ("navigation", "End navigation"),
    ]
    assert _state(agent) == "awaiting_confirmation"
    agent.signals.set(sig.GEAR, "P")
    agent.signals.set(sig.NAV_GUIDANCE, False)
    # Act at exact campaign steps from inside the workers' own events (no polling race with a
    # loaded machine): the car starts rolling once the ECU holds three erase sectors (durable
    # checkpoints, so the retry must resume past 0) of a ~70 KiB stream at 115200 baud; and a
    # cancel is tried while the installer is still entering the point of no return.
    rolled: list[int] = []
    saw_ponr: list[str] = []

    def at_step(ev: dict[str, Any]) -> None:
        d = ev["data"]
        if (
            ev["type"] == "install_progress"
            and d.get("phase") == "transferring"
            and (d.get("offset") or 0) >= 3 * 4096
            and not rolled
        ):
            rolled.append(int(d["offset"]))
            agent.signals.set(sig.SPEED, 8.0)  # stop before the PONR
        if ev["type"] == "state" and d.get("state") == "installing_committed" and not saw_ponr:
            try:
                agent.commands.cancel()
                saw_ponr.append("accepted")
            except (Refused, Conflict) as exc:
                saw_ponr.append(exc.code)

    agent.events.add_listener(at_step)
    agent.commands.install(confirm=True)
    wait_for(lambda: _state(agent) == "downloaded", 60, "back to downloaded")
    assert rolled, "the precondition broke before the transfer was under way"
    assert agent.view.status().reason == "precondition:speed"
    assert agent.view.history()[-1].nothing_changed is True
    agent.commands.refresh_ecus()
    ecu = agent.view.ecus()[0]
    assert ecu.version in ("", None)  # the running slot was never touched
    # fixed: install again; the transfer resumes where it stopped
    agent.signals.set(sig.SPEED, 0.0)
    agent.commands.install(confirm=True)
    wait_for(lambda: _state(agent) == "succeeded", 90, "success")
    assert saw_ponr == ["campaign.point_of_no_return"]
    # two transfers; the one that finished resumed from the device's durable offset (not from
    # 0) and sent only the rest of the stream
    starts = _types(agent, "ecu_transfer_start")
    assert len(starts) == 2, starts
    done = [e["data"] for e in _types(agent, "ecu_transfer_done")]
    assert len(done) == 1, done
    # no progress lost: the device had acked >= rolled[0]; its durable checkpoints are per
    # 4 KiB erase sector
    assert done[0]["resumed_from"] >= rolled[0] - 4096 > 0, (done, rolled)
    assert done[0]["sent_bytes"] < done[0]["wire_bytes"], done
    assert agent.view.ecus()[0].version == "1.0"


def test_cancel_before_ponr_changes_nothing(vehicle: Vehicle, agent: Agent) -> None:
    vehicle.release("1.0", 1, pad=20 * 1024)
    agent.commands.check()
    agent.commands.download_start()
    wait_for(lambda: _state(agent) == "awaiting_confirmation", 20, "download")
    agent.commands.install(confirm=True)
    wait_for(lambda: bool(_types(agent, "ecu_transfer_start")), 20, "transfer start")
    agent.commands.cancel()
    st = agent.view.status()
    assert (st.state, st.reason) == ("downloaded", "cancelled")
    wait_for(lambda: bool(_types(agent, "install_stopped")), 10, "installer stopped")
    agent.commands.refresh_ecus()
    ecu = agent.view.ecus()[0]
    # aborted: the slots are untouched
    assert ecu.slots and all(s.state == SlotState.EMPTY for s in ecu.slots), ecu


def test_schedule_missed_then_retried_with_injected_clock(vehicle: Vehicle) -> None:
    vehicle.config_path.write_text(
        vehicle.toml(schedule_retry_s=600, schedule_max_retries=2, signal_max_age_s=30)
    )
    clock = ManualClock(start=datetime(2026, 11, 27, 20, 0, tzinfo=UTC).timestamp())
    agent = Agent(vehicle.config(), clock=clock)
    agent.start()
    try:
        vehicle.release("1.0", 1)
        agent.commands.check()
        agent.commands.download_start()
        wait_for(lambda: _state(agent) == "awaiting_confirmation", 20, "download")
        with pytest.raises(Refused):
            agent.commands.schedule(datetime(2026, 11, 27, 19, 0, tzinfo=UTC))
        at = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
        agent.commands.schedule(at)
        st = agent.view.status()
        assert st.state == "scheduled" and st.schedule and st.schedule.at == at.isoformat()
        agent.signals.set(sig.GEAR, 127)
        clock.set(at.timestamp() - 1)
        agent.signals.refresh()
        wait_for(lambda: _state(agent) == "scheduled", 2, "still scheduled")
        clock.set(at.timestamp() + 1)
        wait_for(lambda: bool(_types(agent, "schedule_missed")), 10, "missed schedule")
        miss = _types(agent, "schedule_missed")[0]["data"]
        assert miss["reasons"] == ["park"] and miss["gave_up"] is False
        st = agent.view.status()
        assert st.state == "scheduled" and st.schedule and st.schedule.attempts == 1
        assert agent.view.history()[-1].missed is True
        # fixed before the retry: the retry installs
        agent.signals.set(sig.GEAR, 126)
        clock.advance(600)
        wait_for(lambda: _state(agent) == "succeeded", 60, "scheduled install")
        assert agent.view.ecus()[0].version == "1.0"
    finally:
        agent.stop()


def test_schedule_gives_up_after_retries(vehicle: Vehicle) -> None:
    vehicle.config_path.write_text(vehicle.toml(schedule_retry_s=60, schedule_max_retries=1))
    clock = ManualClock()
    agent = Agent(vehicle.config(), clock=clock)
    agent.start()
    try:
        vehicle.release("1.0", 1)
        agent.commands.check()
        agent.signals.set(sig.CONSENT, False)
        agent.commands.download_start()
        wait_for(lambda: _state(agent) == "awaiting_confirmation", 20, "download")
        agent.commands.schedule(datetime.fromtimestamp(clock.now() + 100, UTC))
        clock.advance(101)
        wait_for(lambda: _attempts(agent) == 1, 10, "first miss")
        clock.advance(60)
        wait_for(lambda: _state(agent) == "downloaded", 10, "gave up")
        st = agent.view.status()
        assert st.reason == "schedule_missed" and st.schedule is None
        gave = [e["data"] for e in _types(agent, "schedule_missed") if e["data"]["gave_up"]]
        assert gave and gave[0]["reasons"] == ["consent"]
    finally:
        agent.stop()


def test_restart_keeps_state_and_events(vehicle: Vehicle) -> None:
    vehicle.release("1.0", 1)
    a = Agent(vehicle.config())
    a.start()
    a.commands.check()
    a.commands.download_start()
    wait_for(lambda: _state(a) == "awaiting_confirmation", 20, "download")
    last = a.events.last_id
    a.stop()
    b = Agent(vehicle.config())
    b.start()
    try:
        assert _state(b) == "awaiting_confirmation"
        assert b.view.update_details() is not None
        assert b.events.last_id > last  # ids keep increasing across restarts
        sub = b.events.subscribe(since_id=last - 3)
        got = [sub.get(timeout=1) for _ in range(3)]
        assert [g["id"] for g in got if g] == [last - 2, last - 1, last]
        sub.close()
    finally:
        b.stop()
