"""The campaign state machine: the holder of the persisted record that runs the transition table.

Every transition is persisted atomically (``campaign.json``: temp + fsync + rename) *before* its
actions run, so a host killed at any point restarts in a state whose work is idempotent to redo
(workers are level-triggered on the persisted state; see docs/host.md "Campaign states").

"No stable connection" is ``download_paused`` with reason ``no_connection`` (or
``cellular_not_allowed`` on a metered link without the driver's permission); the ticker leaves
it by itself when the link returns. The point of no return is the first ACTIVATE: the machine
enters ``installing_committed`` (persisted) before any ACTIVATE is sent.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from otalink.host.errors import Conflict
from otalink.host.gateway.campaign import record as rc
from otalink.host.gateway.campaign.record import CampaignRecord, LoopCount, Note, RecordChanges
from otalink.host.gateway.campaign.table import TABLE, Ev, State, Transition
from typing_extensions import Unpack


@dataclass(frozen=True)
class Fired:
    """A transition that happened (handed to the actions after it was persisted)."""

    prev: State
    ev: Ev
    transition: Transition
    record: CampaignRecord


class Machine:
    """Thread-safe holder of the persisted campaign record; ``fire`` runs the table."""

    def __init__(
        self,
        path: Path | None,
        clock_now: Callable[[], float],
        on_transition: Callable[[Fired], None] | None = None,
    ) -> None:
        self._path = path
        self._now = clock_now
        self._lock = threading.RLock()
        self.on_transition = on_transition
        self._rec = rc.load(path) if path is not None else CampaignRecord()

    @property
    def lock(self) -> threading.RLock:
        """Held while firing; hold it to read-modify-fire atomically."""
        return self._lock

    @property
    def state(self) -> State:
        with self._lock:
            return self._rec.state

    @property
    def reason(self) -> str | None:
        with self._lock:
            return self._rec.reason

    def record(self) -> CampaignRecord:
        """The persisted record (immutable: every change replaces it)."""
        with self._lock:
            return self._rec

    def can(self, ev: Ev) -> bool:
        """True if ``ev`` is legal now."""
        with self._lock:
            return (self._rec.state, ev) in TABLE

    def fire(
        self,
        ev: Ev,
        reason: str | None = None,
        *,
        note: Note | None = None,
        **changes: Unpack[RecordChanges],
    ) -> Transition:
        """Apply ``ev``: check the table, persist the new record, then run the actions.

        ``changes`` are record fields changed in the same atomic write; ``note`` (if given)
        adds a history entry with these facts. Raises Conflict (nothing changed) if the table
        has no row for (state, ev).
        """
        with self._lock:
            cur = self._rec.state
            tr = TABLE.get((cur, ev))
            if tr is None:
                raise Conflict(
                    "campaign.illegal_in_state",
                    f"{ev.value} is not allowed in state {cur.value}",
                    cur.value,
                )
            now = self._now()
            update: dict[str, object] = dict(changes)
            update.update(state=tr.next, reason=reason, seq=self._rec.seq + 1)
            if tr.next != cur:
                update.update(since=now, loop=None)  # the loop guard counts per state
            if tr.next == State.AVAILABLE and cur != State.AVAILABLE:
                update["campaign_id"] = uuid.uuid4().hex[:12]
            if note is not None:
                entry = rc.HistoryEntry.model_validate(
                    {"ts": now, "event": ev.value, "from": cur, "to": tr.next, "reason": reason}
                    | dict(note)
                )
                past = changes.get("history", self._rec.history)
                update["history"] = (*past, entry)[-rc.HISTORY_MAX :]
            rec = self._rec.model_copy(update=update)
            self._persist(rec)
            fired = Fired(cur, ev, tr, rec)
        if self.on_transition is not None:
            self.on_transition(fired)
        return tr

    def try_fire(
        self,
        ev: Ev,
        reason: str | None = None,
        *,
        note: Note | None = None,
        **changes: Unpack[RecordChanges],
    ) -> bool:
        """``fire`` from a worker: False (nothing changed) if the state moved on meanwhile."""
        try:
            self.fire(ev, reason, note=note, **changes)
        except Conflict:
            return False
        return True

    def update(self, **changes: Unpack[RecordChanges]) -> CampaignRecord:
        """Persist field changes without a transition (checkpoints: install phases ...)."""
        with self._lock:
            rec = self._rec.model_copy(update=dict(changes))
            self._persist(rec)
            return rec

    def remember(self, event: str, reason: str) -> None:
        """Add a history entry that is not a transition (e.g. a refused check)."""
        with self._lock:
            entry = rc.HistoryEntry(ts=self._now(), event=event, reason=reason)
            self.update(history=(*self._rec.history, entry)[-rc.HISTORY_MAX :])

    def count_attempt(self, state: State) -> LoopCount:
        """Count one more start of the installer's step in ``state`` (persisted before the
        step runs, so a host that keeps dying in it is counted too); the new count."""
        with self._lock:
            old = self._rec.loop
            n = old.count + 1 if old is not None and old.state == state else 1
            loop = LoopCount(state=state, count=n, error=old.error if n > 1 and old else None)
            self.update(loop=loop)
            return loop

    def attempt_failed(self, state: State, error: str) -> None:
        """Remember why the last step in ``state`` failed (the give-up reason)."""
        with self._lock:
            old = self._rec.loop
            if old is not None and old.state == state:
                self.update(loop=old.model_copy(update={"error": error}))

    def _persist(self, rec: CampaignRecord) -> None:
        if self._path is not None:
            rc.dump(self._path, rec)
        self._rec = rec
