"""Regressions of bugs reported against the campaign: a schedule that cleared the pause reason,
a refused REVERT that left the campaign waiting in ``verifying``, post-reboot HELLO polling that
cost a whole ECU timeout per lost HELLO, and link health that flipped on one timeout."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from otalink.host.gateway.campaign.agent import Agent
from otalink.host.gateway.ecu import EcuLinkError
from otalink.host.gateway.ecu import fleet as fl
from otalink.host.gateway.vehicle import signals as sig

from tests.gateway.campaign.vehicle import Vehicle, wait_for


@pytest.fixture
def vehicle(tmp_path: Path, mpy_tree: Path) -> Iterator[Vehicle]:
    v = Vehicle(tmp_path, ecu_ids=("bms",), baud=115200)
    try:
        yield v
    finally:
        v.stop()


def _state(a: Agent) -> str:
    return str(a.view.status().state)


def test_schedule_keeps_the_pause_reason_and_resumes_by_itself(vehicle: Vehicle) -> None:
    vehicle.release("1.0", 1)
    agent = Agent(vehicle.config())
    agent.start()
    try:
        agent.commands.check()
        agent.signals.set(sig.CONNECTIVITY, False)
        agent.commands.download_start()
        assert (_state(agent), agent.view.status().reason) == ("download_paused", "no_connection")
        agent.commands.schedule(datetime.fromtimestamp(time.time() + 3600, UTC))
        st = agent.view.status()
        assert (st.state, st.reason) == ("download_paused", "no_connection")
        assert st.schedule is not None
        # the link returns: the download resumes by itself (no download_resume() needed) and
        # ends in the scheduled state
        agent.signals.set(sig.CONNECTIVITY, True)
        wait_for(lambda: _state(agent) == "scheduled", 30, "resumed download, scheduled")
        assert "download_resume" not in [h.event for h in agent.view.history()]
    finally:
        agent.stop()


def test_unschedule_keeps_the_pause_reason(vehicle: Vehicle) -> None:
    vehicle.release("1.0", 1)
    agent = Agent(vehicle.config())
    agent.start()
    try:
        agent.commands.check()
        agent.signals.set(sig.CONNECTIVITY, False)
        agent.commands.download_start()
        agent.commands.schedule(datetime.fromtimestamp(time.time() + 3600, UTC))
        agent.commands.unschedule()
        st = agent.view.status()
        assert (st.state, st.reason, st.schedule) == (
            "download_paused",
            "no_connection",
            None,
        )
    finally:
        agent.stop()


def test_refused_revert_ends_in_needs_service_without_waiting(
    tmp_path: Path, mpy_tree: Path
) -> None:
    # Fresh ECUs run no confirmed image: when adas fails its trial, bms (on trial) cannot go
    # back (REVERT -> E_NO_IMAGE). The campaign must end at once in failed_needs_service with
    # the reason, not wait restart_timeout_s for an ECU that will never revert.
    v = Vehicle(tmp_path, ecu_ids=("bms", "adas"))
    try:
        v.config_path.write_text(v.toml(restart_timeout_s=300))
        v.release("1.0", 1, failing=("adas",))
        agent = Agent(v.config())
        agent.start()
        try:
            agent.commands.check()
            agent.commands.download_start()
            wait_for(lambda: _state(agent) == "awaiting_confirmation", 30, "download")
            agent.commands.install(confirm=True)
            wait_for(lambda: _state(agent) == "failed_needs_service", 90, "needs service")
            st = agent.view.status()
            reason = st.reason or ""
            assert "revert_refused:bms:ecu_rejected.e_no_image" in reason, reason
            assert reason.startswith("ecu_failed:adas:"), reason
            assert st.install.ecus["bms"].phase == "failed"
            refused = [e for e in agent.events.since(0) if e["type"] == "ecu_revert_refused"]
            assert [e["data"]["ecu_id"] for e in refused] == ["bms"]
        finally:
            agent.stop()
    finally:
        v.stop()


def test_post_reboot_hello_poll_is_bounded_by_the_deadline(vehicle: Vehicle) -> None:
    # per-request ECU timeout 5 s (x3 tries): one lost HELLO used to cost 15 s
    cfg = vehicle.config().ecus[0]
    line = fl.Line(cfg, lambda c: fl.default_client(c, timeout=5.0))
    try:
        info = line.hello_until(time.monotonic() + 30)  # a live ECU answers the short tries
        assert info.ecu_id == "bms"
        assert line.client().timeout == 5.0  # the short wait was only for the poll
        vehicle.procs["bms"].stop()  # silent, like an ECU in the middle of its reset
        t0 = time.monotonic()
        with pytest.raises(EcuLinkError):
            line.hello_until(t0 + 1.0)
        took = time.monotonic() - t0
        assert took < 3.0, took
        assert line.client().timeout == 5.0
    finally:
        line.close()


def test_link_health_reflects_a_short_history() -> None:
    h = fl.LineHealth()
    assert h.ok is False  # never answered
    h.record(True)
    assert h.ok and h.last_error is None
    h.record(False, "ecu_link.e_timeout")
    assert h.ok, "one timeout under load does not flag the line"
    assert (h.errors, h.last_error) == (1, "ecu_link.e_timeout")
    for _ in range(fl.HEALTH_WINDOW - 1):
        h.record(False, "ecu_link.e_timeout")
    assert h.ok is False  # the last HEALTH_WINDOW requests all failed
    h.record(True)
    assert h.ok and h.errors == fl.HEALTH_WINDOW and h.last_seen is not None
