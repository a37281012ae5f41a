"""Mender's loop guard: the installer's step in one state starts at most ``LOOP_MAX`` times.

The count is persisted before each start, so a host that keeps dying in a state (or a step that
keeps failing) ends the campaign instead of looping: after the point of no return in
``failed_needs_service`` (reported), before it back in ``downloaded`` (nothing changed). The
campaigns start from ``data/v1-restarting.json``, a record the agent of commit d955c95 wrote
after the point of no return; the ECU lines lead nowhere (no ECU answers).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from otalink.host.gateway.campaign import record as rc
from otalink.host.gateway.campaign.agent import Agent
from otalink.host.gateway.campaign.table import LOOP_MAX, State
from otalink.host.gateway.config import AgentConfig, EcuConfig, PolicyConfig

DATA = Path(__file__).with_name("data")


def _agent(tmp_path: Path, state: State, count: int, error: str | None = None) -> Agent:
    rec = rc.parse(json.loads((DATA / "v1-restarting.json").read_text()))
    rec = rec.model_copy(
        update={
            "state": state,
            "report_queued": False,
            "loop": rc.LoopCount(state=state, count=count, error=error),
        }
    )
    state_dir = tmp_path / "state"
    rc.dump(state_dir / "campaign.json", rec)
    ecus = tuple(
        EcuConfig(e, f"{e}-hw1", "socket://127.0.0.1:9", bytes(32)) for e in ("adas", "bms")
    )
    cfg = AgentConfig(
        vehicle_id="VIN-TEST-1",
        state_dir=state_dir,
        server_url="http://127.0.0.1:9",
        check_interval_s=0,
        ecus=ecus,
        policy=PolicyConfig(restart_timeout_s=1.0, ecu_timeout_s=0.5),
    )
    return Agent(cfg)


@pytest.fixture
def started() -> Iterator[list[Agent]]:
    agents: list[Agent] = []
    yield agents
    for a in agents:
        a.stop()


def _until(agent: Agent, states: set[State], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while agent.machine.state not in states:
        assert time.monotonic() < deadline, agent.view.status()
        time.sleep(0.02)


def test_a_host_dying_in_a_state_ends_in_needs_service(
    tmp_path: Path, started: list[Agent]
) -> None:
    agent = _agent(tmp_path, State.RESTARTING, LOOP_MAX)
    started.append(agent)
    agent.start()
    _until(agent, {State.FAILED_NEEDS_SERVICE})
    rec = agent.machine.record()
    assert rec.reason == "loop_guard:restarting"
    assert rec.result is not None and rec.result.state == State.FAILED_NEEDS_SERVICE
    assert set(rec.result.ecus) == {"adas", "bms"}
    assert rec.history[-1].result == State.FAILED_NEEDS_SERVICE
    assert rec.loop is None  # the count belongs to the state it left
    guard = [e["data"] for e in agent.events.since(0) if e["type"] == "loop_guard"]
    assert guard == [{"state": "restarting", "reason": "loop_guard:restarting"}]
    # the step itself never ran: no ECU was polled
    assert not [e for e in agent.events.since(0) if e["type"] == "ecu_error"]
    outbox = tmp_path / "state" / "reports" / "outbox"
    deadline = time.monotonic() + 10
    while not list(outbox.glob("*-failed_needs_service.json")):
        assert time.monotonic() < deadline, "report not queued"
        time.sleep(0.02)


def test_the_last_error_of_a_failing_step_is_the_reason(
    tmp_path: Path, started: list[Agent]
) -> None:
    agent = _agent(tmp_path, State.VERIFYING, LOOP_MAX, error="RuntimeError")
    started.append(agent)
    agent.start()
    _until(agent, {State.FAILED_NEEDS_SERVICE})
    assert agent.machine.reason == "agent_error:RuntimeError"


def test_below_the_limit_the_step_runs(tmp_path: Path, started: list[Agent]) -> None:
    agent = _agent(tmp_path, State.RESTARTING, LOOP_MAX - 1)
    started.append(agent)
    agent.start()
    _until(agent, {State.FAILED_NEEDS_SERVICE})
    # the step ran (the 28th start) and found the ECUs silent after restart_timeout_s
    assert (agent.machine.reason or "").startswith("ecu_unreachable:")
    assert not [e for e in agent.events.since(0) if e["type"] == "loop_guard"]


def test_before_the_point_of_no_return_nothing_is_changed(
    tmp_path: Path, started: list[Agent]
) -> None:
    agent = _agent(tmp_path, State.INSTALLING, LOOP_MAX)
    started.append(agent)
    agent.start()
    _until(agent, {State.DOWNLOADED})
    rec = agent.machine.record()
    assert rec.reason == "loop_guard:installing"
    assert rec.history[-1].nothing_changed is True and rec.result is None
