"""The campaign state machine: ONE transition table (state x event -> next state + action).

Every transition is persisted atomically (``campaign.json``: temp + fsync + rename) *before* its
action runs, so a host killed at any point restarts in a state whose work is idempotent to redo
(workers are level-triggered on the persisted state; see docs/host.md "Campaign states").

"No stable connection" is ``download_paused`` with reason ``no_connection`` (or
``cellular_not_allowed`` on a metered link without the driver's permission); the downloader
leaves it by itself when the link returns. The point of no return is the first ACTIVATE: the
machine enters ``installing_committed`` (persisted) before any ACTIVATE is sent.
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from otalink.host.campaign.errors import Conflict
from otalink.host.campaign.store import atomic_write_json, read_json


class State(StrEnum):
    """Campaign states (persisted by value)."""

    IDLE = "idle"
    AVAILABLE = "available"
    DOWNLOADING = "downloading"
    DOWNLOAD_PAUSED = "download_paused"
    DOWNLOADED = "downloaded"
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    SCHEDULED = "scheduled"
    INSTALLING = "installing"  # transferring + verifying on the ECUs, before the PONR
    INSTALLING_COMMITTED = "installing_committed"  # activating: after the point of no return
    RESTARTING = "restarting"
    VERIFYING = "verifying"
    SUCCEEDED = "succeeded"
    FAILED_ROLLED_BACK = "failed_rolled_back"
    FAILED_NEEDS_SERVICE = "failed_needs_service"


class Ev(StrEnum):
    """Inputs of the machine."""

    CHECK_FOUND = "check_found"
    CHECK_NONE = "check_none"
    DOWNLOAD_START = "download_start"
    DOWNLOAD_PAUSE = "download_pause"
    DOWNLOAD_RESUME = "download_resume"
    CONNECTION_LOST = "connection_lost"
    METERED_BLOCKED = "metered_blocked"
    CONNECTION_BACK = "connection_back"
    DOWNLOAD_DONE = "download_done"
    DOWNLOAD_DONE_SCHEDULED = "download_done_scheduled"
    DOWNLOAD_FAILED = "download_failed"
    DOWNLOAD_CANCEL = "download_cancel"
    REQUEST_INSTALL = "request_install"
    DECLINE = "decline"
    CONFIRM_INSTALL = "confirm_install"
    SCHEDULE = "schedule"
    UNSCHEDULE = "unschedule"
    SCHEDULE_DUE = "schedule_due"
    SCHEDULE_MISSED = "schedule_missed"
    SCHEDULE_GAVE_UP = "schedule_gave_up"
    PRECONDITION_BROKEN = "precondition_broken"
    INSTALL_FAILED = "install_failed"
    CANCEL = "cancel"
    POINT_OF_NO_RETURN = "point_of_no_return"
    REBOOT_SENT = "reboot_sent"
    ECUS_BACK = "ecus_back"
    VERIFY_OK = "verify_ok"
    ROLLED_BACK = "rolled_back"
    NEEDS_SERVICE = "needs_service"
    ACKNOWLEDGE = "acknowledge"


@dataclass(frozen=True)
class Transition:
    """One row of the table."""

    next: State
    action: str  # name of the hook the agent runs after persisting ("" = none)


S = State
_PRE_DL = (S.AVAILABLE, S.DOWNLOADING, S.DOWNLOAD_PAUSED)
_READY = (S.DOWNLOADED, S.AWAITING_CONFIRMATION, S.SCHEDULED)
_FINAL = (S.SUCCEEDED, S.FAILED_ROLLED_BACK)

# THE table.  Anything not listed is refused (Conflict) and changes nothing.
TABLE: dict[tuple[State, Ev], Transition] = {
    # -- discovery
    (S.IDLE, Ev.CHECK_FOUND): Transition(S.AVAILABLE, "announce"),
    (S.IDLE, Ev.CHECK_NONE): Transition(S.IDLE, ""),
    (S.AVAILABLE, Ev.CHECK_FOUND): Transition(S.AVAILABLE, "announce"),
    (S.AVAILABLE, Ev.CHECK_NONE): Transition(S.IDLE, "discard_download"),
    (S.SUCCEEDED, Ev.CHECK_FOUND): Transition(S.AVAILABLE, "announce"),
    (S.FAILED_ROLLED_BACK, Ev.CHECK_FOUND): Transition(S.AVAILABLE, "announce"),
    (S.SUCCEEDED, Ev.CHECK_NONE): Transition(S.SUCCEEDED, ""),
    (S.FAILED_ROLLED_BACK, Ev.CHECK_NONE): Transition(S.FAILED_ROLLED_BACK, ""),
    # -- download
    (S.AVAILABLE, Ev.DOWNLOAD_START): Transition(S.DOWNLOADING, "wake_downloader"),
    (S.DOWNLOADING, Ev.DOWNLOAD_PAUSE): Transition(S.DOWNLOAD_PAUSED, "stop_downloader"),
    (S.DOWNLOAD_PAUSED, Ev.DOWNLOAD_RESUME): Transition(S.DOWNLOADING, "wake_downloader"),
    (S.DOWNLOAD_PAUSED, Ev.DOWNLOAD_START): Transition(S.DOWNLOADING, "wake_downloader"),
    (S.DOWNLOADING, Ev.CONNECTION_LOST): Transition(S.DOWNLOAD_PAUSED, ""),
    (S.DOWNLOADING, Ev.METERED_BLOCKED): Transition(S.DOWNLOAD_PAUSED, ""),
    (S.DOWNLOAD_PAUSED, Ev.CONNECTION_LOST): Transition(S.DOWNLOAD_PAUSED, ""),
    (S.DOWNLOAD_PAUSED, Ev.METERED_BLOCKED): Transition(S.DOWNLOAD_PAUSED, ""),
    (S.DOWNLOAD_PAUSED, Ev.CONNECTION_BACK): Transition(S.DOWNLOADING, "wake_downloader"),
    (S.DOWNLOADING, Ev.DOWNLOAD_DONE): Transition(S.AWAITING_CONFIRMATION, "prompt_confirm"),
    (S.DOWNLOADING, Ev.DOWNLOAD_DONE_SCHEDULED): Transition(S.SCHEDULED, "wake_scheduler"),
    (S.DOWNLOADING, Ev.DOWNLOAD_FAILED): Transition(S.AVAILABLE, "discard_download"),
    (S.DOWNLOADING, Ev.DOWNLOAD_CANCEL): Transition(S.AVAILABLE, "discard_download"),
    (S.DOWNLOAD_PAUSED, Ev.DOWNLOAD_CANCEL): Transition(S.AVAILABLE, "discard_download"),
    (S.DOWNLOADED, Ev.DOWNLOAD_CANCEL): Transition(S.AVAILABLE, "discard_download"),
    (S.AWAITING_CONFIRMATION, Ev.DOWNLOAD_CANCEL): Transition(S.AVAILABLE, "discard_download"),
    (S.SCHEDULED, Ev.DOWNLOAD_CANCEL): Transition(S.AVAILABLE, "discard_download"),
    # -- confirmation
    (S.DOWNLOADED, Ev.REQUEST_INSTALL): Transition(S.AWAITING_CONFIRMATION, "prompt_confirm"),
    (S.AWAITING_CONFIRMATION, Ev.REQUEST_INSTALL): Transition(S.AWAITING_CONFIRMATION, ""),
    (S.AWAITING_CONFIRMATION, Ev.DECLINE): Transition(S.DOWNLOADED, ""),
    (S.DOWNLOADED, Ev.CONFIRM_INSTALL): Transition(S.INSTALLING, "wake_installer"),
    (S.AWAITING_CONFIRMATION, Ev.CONFIRM_INSTALL): Transition(S.INSTALLING, "wake_installer"),
    (S.SCHEDULED, Ev.CONFIRM_INSTALL): Transition(S.INSTALLING, "wake_installer"),
    # -- scheduling (before the download completes the schedule rides along with the state)
    (S.AVAILABLE, Ev.SCHEDULE): Transition(S.DOWNLOADING, "wake_downloader"),
    (S.DOWNLOADING, Ev.SCHEDULE): Transition(S.DOWNLOADING, "wake_scheduler"),
    (S.DOWNLOAD_PAUSED, Ev.SCHEDULE): Transition(S.DOWNLOAD_PAUSED, "wake_scheduler"),
    (S.DOWNLOADED, Ev.SCHEDULE): Transition(S.SCHEDULED, "wake_scheduler"),
    (S.AWAITING_CONFIRMATION, Ev.SCHEDULE): Transition(S.SCHEDULED, "wake_scheduler"),
    (S.SCHEDULED, Ev.SCHEDULE): Transition(S.SCHEDULED, "wake_scheduler"),
    (S.DOWNLOADING, Ev.UNSCHEDULE): Transition(S.DOWNLOADING, ""),
    (S.DOWNLOAD_PAUSED, Ev.UNSCHEDULE): Transition(S.DOWNLOAD_PAUSED, ""),
    (S.SCHEDULED, Ev.UNSCHEDULE): Transition(S.DOWNLOADED, ""),
    (S.SCHEDULED, Ev.SCHEDULE_DUE): Transition(S.INSTALLING, "wake_installer"),
    (S.SCHEDULED, Ev.SCHEDULE_MISSED): Transition(S.SCHEDULED, "wake_scheduler"),
    (S.DOWNLOADING, Ev.SCHEDULE_MISSED): Transition(S.DOWNLOADING, "wake_scheduler"),
    (S.DOWNLOAD_PAUSED, Ev.SCHEDULE_MISSED): Transition(S.DOWNLOAD_PAUSED, "wake_scheduler"),
    (S.SCHEDULED, Ev.SCHEDULE_GAVE_UP): Transition(S.DOWNLOADED, ""),
    (S.DOWNLOADING, Ev.SCHEDULE_GAVE_UP): Transition(S.DOWNLOADING, ""),
    (S.DOWNLOAD_PAUSED, Ev.SCHEDULE_GAVE_UP): Transition(S.DOWNLOAD_PAUSED, ""),
    # -- install, before the point of no return: any stop goes back to downloaded
    (S.INSTALLING, Ev.PRECONDITION_BROKEN): Transition(S.DOWNLOADED, "abort_ecus"),
    (S.INSTALLING, Ev.INSTALL_FAILED): Transition(S.DOWNLOADED, "abort_ecus"),
    (S.INSTALLING, Ev.CANCEL): Transition(S.DOWNLOADED, "abort_ecus"),
    (S.INSTALLING, Ev.POINT_OF_NO_RETURN): Transition(S.INSTALLING_COMMITTED, "wake_installer"),
    # -- after it
    (S.INSTALLING_COMMITTED, Ev.REBOOT_SENT): Transition(S.RESTARTING, "wake_installer"),
    (S.INSTALLING_COMMITTED, Ev.ROLLED_BACK): Transition(S.FAILED_ROLLED_BACK, "report"),
    (S.INSTALLING_COMMITTED, Ev.NEEDS_SERVICE): Transition(S.FAILED_NEEDS_SERVICE, "report"),
    (S.RESTARTING, Ev.ECUS_BACK): Transition(S.VERIFYING, "wake_installer"),
    (S.RESTARTING, Ev.NEEDS_SERVICE): Transition(S.FAILED_NEEDS_SERVICE, "report"),
    (S.VERIFYING, Ev.VERIFY_OK): Transition(S.SUCCEEDED, "report"),
    (S.VERIFYING, Ev.ROLLED_BACK): Transition(S.FAILED_ROLLED_BACK, "report"),
    (S.VERIFYING, Ev.NEEDS_SERVICE): Transition(S.FAILED_NEEDS_SERVICE, "report"),
    # -- done
    (S.SUCCEEDED, Ev.ACKNOWLEDGE): Transition(S.IDLE, ""),
    (S.FAILED_ROLLED_BACK, Ev.ACKNOWLEDGE): Transition(S.IDLE, ""),
    (S.FAILED_NEEDS_SERVICE, Ev.ACKNOWLEDGE): Transition(S.IDLE, ""),
}

HISTORY_MAX = 200
PONR_STATES = frozenset({S.INSTALLING_COMMITTED, S.RESTARTING, S.VERIFYING})
INSTALL_STATES = frozenset({S.INSTALLING}) | PONR_STATES
TERMINAL = frozenset({S.SUCCEEDED, S.FAILED_ROLLED_BACK, S.FAILED_NEEDS_SERVICE})


def legal_events(state: State) -> list[Ev]:
    """Events the table accepts in ``state``."""
    return [ev for (st, ev) in TABLE if st == state]


def fresh_record() -> dict[str, Any]:
    """The persisted record of a machine that never ran."""
    return {
        "version": 1,
        "state": State.IDLE.value,
        "reason": None,
        "since": 0.0,
        "seq": 0,
        "campaign_id": None,
        "plan": None,
        "schedule": None,
        "install": {},
        "result": None,
        "history": [],
    }


class Machine:
    """Thread-safe holder of the persisted campaign record; ``fire`` runs the table."""

    def __init__(
        self,
        path: Path | None,
        clock_now: Callable[[], float],
        on_transition: Callable[[State, Ev, Transition, dict[str, Any]], None] | None = None,
    ) -> None:
        self._path = path
        self._now = clock_now
        self._lock = threading.RLock()
        self.on_transition = on_transition
        loaded = read_json(path) if path is not None else None
        self._rec: dict[str, Any] = fresh_record()
        if isinstance(loaded, dict) and loaded.get("version") == 1:
            self._rec.update(loaded)
        State(self._rec["state"])  # a corrupt state name fails loudly here

    @property
    def lock(self) -> threading.RLock:
        """Held while firing; hold it to read-modify-fire atomically."""
        return self._lock

    @property
    def state(self) -> State:
        with self._lock:
            return State(self._rec["state"])

    @property
    def reason(self) -> str | None:
        with self._lock:
            r = self._rec["reason"]
            return None if r is None else str(r)

    def record(self) -> dict[str, Any]:
        """A deep copy of the persisted record."""
        with self._lock:
            return copy.deepcopy(self._rec)

    def get(self, key: str) -> Any:
        """One field of the record (deep copy)."""
        with self._lock:
            return copy.deepcopy(self._rec.get(key))

    def can(self, ev: Ev) -> bool:
        """True if ``ev`` is legal now."""
        with self._lock:
            return (self.state, ev) in TABLE

    def fire(
        self,
        ev: Ev,
        reason: str | None = None,
        updates: dict[str, Any] | None = None,
        history: dict[str, Any] | None = None,
    ) -> Transition:
        """Apply ``ev``: check the table, update + persist the record, then run the hook.

        ``updates`` are record fields changed in the same atomic write; ``history`` (if given)
        is appended to the history list. Raises Conflict (nothing changed) if the table has no
        row for (state, ev).
        """
        with self._lock:
            cur = self.state
            tr = TABLE.get((cur, ev))
            if tr is None:
                raise Conflict(
                    "illegal_in_state", f"{ev.value} is not allowed in state {cur.value}", cur.value
                )
            rec = copy.deepcopy(self._rec)
            rec.update(copy.deepcopy(updates or {}))
            if tr.next == S.AVAILABLE and cur != S.AVAILABLE:
                rec["campaign_id"] = uuid.uuid4().hex[:12]
            rec["state"] = tr.next.value
            rec["reason"] = reason
            rec["seq"] = int(rec["seq"]) + 1
            if tr.next != cur:
                rec["since"] = self._now()
            if history is not None:
                entry: dict[str, Any] = {"ts": self._now(), "event": ev.value, "from": cur.value}
                entry.update({"to": tr.next.value, "reason": reason})
                entry.update(history)
                rec["history"] = (rec["history"] + [entry])[-HISTORY_MAX:]
            if self._path is not None:
                atomic_write_json(self._path, rec)
            self._rec = rec
            snapshot = copy.deepcopy(rec)
        if self.on_transition is not None:
            self.on_transition(cur, ev, tr, snapshot)
        return tr

    def update(self, **fields: Any) -> None:
        """Persist field changes without a transition (checkpoints: install progress, plan)."""
        with self._lock:
            rec = copy.deepcopy(self._rec)
            rec.update(copy.deepcopy(fields))
            if self._path is not None:
                atomic_write_json(self._path, rec)
            self._rec = rec
