"""Install scheduling: when a scheduled install is due, install, or record a miss and retry.

Retry policy (docs/host.md "Scheduling"): at the chosen time the install starts if every
precondition holds and the update is downloaded. Otherwise the miss is reported (event
``schedule_missed`` + history entry with the failing reasons) and retried every
``policy.schedule_retry_s`` seconds, at most ``policy.schedule_max_retries`` times; after the last
miss the schedule is dropped and the campaign returns to ``downloaded`` with reason
``schedule_missed`` (the driver picks a new time or installs by hand).
"""

from __future__ import annotations

from dataclasses import dataclass

from otalink.host.gateway.campaign.record import Miss, Schedule
from otalink.host.gateway.campaign.table import Ev, State
from otalink.host.gateway.config import PolicyConfig

MISSES_KEPT = 10


def new_schedule(at: float) -> Schedule:
    """The persisted schedule for a chosen time."""
    return Schedule(at=at, next_at=at)


@dataclass(frozen=True)
class Decision:
    """What the scheduler wants: an event to fire (or None), the new schedule, the reasons."""

    event: Ev | None
    schedule: Schedule | None
    reasons: list[str]


def decide(
    schedule: Schedule | None,
    now: float,
    state: State,
    failing_ids: list[str],
    policy: PolicyConfig,
) -> Decision:
    """Pure decision for the scheduler tick (no I/O, testable with any clock)."""
    if schedule is None or now < schedule.next_at:
        return Decision(None, schedule, [])
    reasons: list[str] = []
    if state in (State.DOWNLOADING, State.DOWNLOAD_PAUSED):
        reasons.append("download_incomplete")
    elif state != State.SCHEDULED:
        return Decision(None, schedule, [])  # not ours to act on (e.g. installing already)
    reasons.extend(failing_ids)
    if not reasons:
        return Decision(Ev.SCHEDULE_DUE, None, [])
    attempts = schedule.attempts + 1
    misses = (*schedule.misses, Miss(ts=now, reasons=tuple(reasons)))[-MISSES_KEPT:]
    if attempts > policy.schedule_max_retries:
        return Decision(Ev.SCHEDULE_GAVE_UP, None, reasons)
    nxt = schedule.model_copy(
        update={"attempts": attempts, "misses": misses, "next_at": now + policy.schedule_retry_s}
    )
    return Decision(Ev.SCHEDULE_MISSED, nxt, reasons)
