"""The command facade in every state, without ECUs or threads: what each driver command does
(next state, reason, what it clears, the history) or how it is refused.

``EXPECTED`` is written out by hand from the agent before the tables (commit d955c95,
``Agent.download_start`` ... ``Agent.acknowledge``), so the table-driven facade is checked
against the behaviour it replaced, not against its own tables.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from otalink.host.errors import CampaignError
from otalink.host.gateway.campaign import record as rc
from otalink.host.gateway.campaign.agent import Agent
from otalink.host.gateway.campaign.commands import Commands
from otalink.host.gateway.campaign.table import State
from otalink.host.gateway.config import AgentConfig, EcuConfig

S = State
DATA = Path(__file__).with_name("data")
KEEP = "r0"  # the reason every test state starts with ("kept" when a command leaves it)
ILLEGAL = "campaign.illegal_in_state"
LATER = datetime.now(UTC) + timedelta(hours=2)
Outcome = tuple[State, str | None] | str  # next state and reason, or the refusal's code


def _unchanged(st: State) -> Outcome:
    return (st, KEEP)


COMMANDS: dict[str, Callable[[Commands], object]] = {
    "download_start": lambda c: c.download_start(),
    "download_pause": lambda c: c.download_pause(),
    "download_resume": lambda c: c.download_resume(),
    "download_cancel": lambda c: c.download_cancel(),
    "install": lambda c: c.install(confirm=True),
    "install_unconfirmed": lambda c: c.install(confirm=False),
    "schedule": lambda c: c.schedule(LATER),
    "unschedule": lambda c: c.unschedule(),
    "cancel": lambda c: c.cancel(),
    "acknowledge": lambda c: c.acknowledge(),
}
PONR = (S.INSTALLING_COMMITTED, S.RESTARTING, S.VERIFYING)
READY = (S.DOWNLOADED, S.AWAITING_CONFIRMATION, S.SCHEDULED)
EXPECTED: dict[str, dict[State, Outcome]] = {
    "download_start": {
        S.AVAILABLE: (S.DOWNLOADING, None),
        S.DOWNLOAD_PAUSED: (S.DOWNLOADING, None),
        S.DOWNLOADING: _unchanged(S.DOWNLOADING),
    },
    "download_pause": {
        S.DOWNLOADING: (S.DOWNLOAD_PAUSED, "user"),
        S.DOWNLOAD_PAUSED: _unchanged(S.DOWNLOAD_PAUSED),
    },
    "download_resume": {
        S.DOWNLOAD_PAUSED: (S.DOWNLOADING, None),
        S.DOWNLOADING: _unchanged(S.DOWNLOADING),
    },
    "download_cancel": {
        s: (S.AVAILABLE, "cancelled") for s in (S.DOWNLOADING, S.DOWNLOAD_PAUSED, *READY)
    },
    "install": {
        **{s: (S.INSTALLING, None) for s in READY},
        **dict.fromkeys((S.AVAILABLE, S.DOWNLOADING, S.DOWNLOAD_PAUSED), "campaign.not_downloaded"),
    },
    "install_unconfirmed": {
        **dict.fromkeys(READY, "campaign.confirmation_required"),
        **dict.fromkeys((S.AVAILABLE, S.DOWNLOADING, S.DOWNLOAD_PAUSED), "campaign.not_downloaded"),
    },
    "schedule": {
        S.AVAILABLE: (S.DOWNLOADING, None),
        S.DOWNLOADING: _unchanged(S.DOWNLOADING),
        S.DOWNLOAD_PAUSED: _unchanged(S.DOWNLOAD_PAUSED),
        **{s: (S.SCHEDULED, None) for s in READY},
    },
    "unschedule": {
        S.DOWNLOADING: _unchanged(S.DOWNLOADING),
        S.DOWNLOAD_PAUSED: _unchanged(S.DOWNLOAD_PAUSED),
        S.SCHEDULED: (S.DOWNLOADED, "unscheduled"),
    },
    "cancel": {
        S.INSTALLING: (S.DOWNLOADED, "cancelled"),
        S.SCHEDULED: (S.DOWNLOADED, "unscheduled"),
        S.AWAITING_CONFIRMATION: (S.DOWNLOADED, "declined"),
        S.DOWNLOADING: (S.AVAILABLE, "cancelled"),
        S.DOWNLOAD_PAUSED: (S.AVAILABLE, "cancelled"),
        **dict.fromkeys(PONR, "campaign.point_of_no_return"),
    },
    "acknowledge": {
        s: (S.IDLE, None) for s in (S.SUCCEEDED, S.FAILED_ROLLED_BACK, S.FAILED_NEEDS_SERVICE)
    },
}
# a history entry, and who asked, for the commands that note one
NOTED = {"download_start", "download_cancel", "install", "schedule", "unschedule", "cancel"}
BY_DRIVER = {("install", s) for s in READY} | {("cancel", S.INSTALLING)}


def _agent_in(tmp_path: Path, state: State) -> Agent:
    base = rc.parse(json.loads((DATA / "v1-succeeded.json").read_text()))
    rec = base.model_copy(
        update={
            "state": state,
            "reason": KEEP,
            "history": (),
            "schedule": rc.Schedule(at=2e9, next_at=2e9),
            "images": {"bms": "/nowhere/bms.otb"},
        }
    )
    state_dir = tmp_path / "state"
    rc.dump(state_dir / "campaign.json", rec)
    cfg = AgentConfig(
        vehicle_id="VIN-TEST-1",
        state_dir=state_dir,
        check_interval_s=0,
        ecus=(EcuConfig("bms", "bms-hw1", "socket://127.0.0.1:9", bytes(32)),),
    )
    return Agent(cfg)  # not started: the commands alone


CASES = [(name, st) for name in COMMANDS for st in State]


@pytest.mark.parametrize(("name", "state"), CASES, ids=[f"{n}-{s}" for n, s in CASES])
def test_command_in_state(tmp_path: Path, name: str, state: State) -> None:
    agent = _agent_in(tmp_path, state)
    before = agent.machine.record()
    want = EXPECTED[name].get(state, ILLEGAL)
    try:
        COMMANDS[name](agent.commands)
        got: Outcome = (agent.machine.state, agent.machine.reason)
    except CampaignError as exc:
        got = exc.code
        if name == "install_unconfirmed" and state == S.DOWNLOADED:
            # refused, but the driver is asked: awaiting_confirmation
            assert agent.machine.state == S.AWAITING_CONFIRMATION
        else:
            assert agent.machine.record() == before, "a refusal changed the record"
    assert got == want
    after = agent.machine.record()
    moved = after.seq != before.seq
    if not isinstance(want, tuple) or not moved:
        return
    noted = len(after.history) == 1
    assert noted == (name in NOTED), after.history
    if noted:
        assert after.history[0].by == ("driver" if (name, state) in BY_DRIVER else None)
    if name in ("download_cancel", "install") or (name, state) == ("cancel", S.DOWNLOADING):
        assert after.schedule is None
    if name == "download_cancel":
        assert after.images is None
    if name == "acknowledge":
        assert after.install == {}
    if name == "schedule":
        assert after.schedule is not None and after.schedule.at == LATER.timestamp()


def test_unschedule_without_a_schedule_is_not_found(tmp_path: Path) -> None:
    agent = _agent_in(tmp_path, S.SCHEDULED)
    agent.machine.update(schedule=None)
    with pytest.raises(CampaignError) as ei:
        agent.commands.unschedule()
    assert ei.value.code == "campaign.no_schedule"


def test_a_time_in_the_past_is_refused(tmp_path: Path) -> None:
    agent = _agent_in(tmp_path, S.DOWNLOADED)
    with pytest.raises(CampaignError) as ei:
        agent.commands.schedule(datetime.now(UTC) - timedelta(minutes=5))
    assert ei.value.code == "campaign.schedule_in_past"
    agent.commands.schedule(datetime.now(UTC) - timedelta(seconds=30))  # "now" is fine
    assert agent.machine.state == S.SCHEDULED


@pytest.mark.parametrize("state", [S.INSTALLING, *PONR])
def test_no_ecu_refresh_while_installing(tmp_path: Path, state: State) -> None:
    agent = _agent_in(tmp_path, state)
    with pytest.raises(CampaignError) as ei:
        agent.commands.refresh_ecus()
    assert ei.value.code == "campaign.installing"


def test_offline_download_start_pauses_at_once(tmp_path: Path) -> None:
    from otalink.host.gateway.vehicle import signals as sig

    agent = _agent_in(tmp_path, S.AVAILABLE)
    agent.signals.set(sig.NETWORK, "cellular")
    agent.commands.download_start()
    assert (agent.machine.state, agent.machine.reason) == (
        S.DOWNLOAD_PAUSED,
        "cellular_not_allowed",
    )
    agent.commands.allow_cellular(True)
    agent.signals.set(sig.CONNECTIVITY, False)
    agent.commands.download_resume()
    assert (agent.machine.state, agent.machine.reason) == (S.DOWNLOAD_PAUSED, "no_connection")
    assert agent.view.status().cellular_allowed is True
