"""The command facade: what the driver can ask (the local API calls it; the CLI through the API).

Legality is the tables' (``table.COMMANDS`` / ``table.REFUSALS``): a command looks up what it
does in the current state, or why it is refused, and fires that event under the machine's lock.
Errors: ``Refused`` / ``Conflict`` / ``NotFound`` (``otalink.host.errors``), each with a stable
``code``; a refusal changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from otalink.host.errors import Conflict, FailingCheck, NotFound, Refused
from otalink.host.gateway.campaign import preconditions as pre
from otalink.host.gateway.campaign import scheduler as sch
from otalink.host.gateway.campaign.clock import Clock, iso
from otalink.host.gateway.campaign.connectivity import Connectivity
from otalink.host.gateway.campaign.discovery import CheckResult, Discovery
from otalink.host.gateway.campaign.events import EventLog
from otalink.host.gateway.campaign.machine import Machine
from otalink.host.gateway.campaign.record import Note, RecordChanges
from otalink.host.gateway.campaign.table import (
    COMMANDS,
    INSTALL_STATES,
    REFUSALS,
    Clears,
    Command,
    Order,
    Refusal,
    State,
)
from typing_extensions import Unpack

PAST_GRACE_S = 60.0  # a time up to a minute ago is "now", not the past
PONR_DETAIL = (
    "The ECUs are being activated; stopping now could leave the vehicle inconsistent. "
    "The update completes or rolls back by itself."
)


class Commands:
    """The driver's commands, each looked up in the command table."""

    def __init__(
        self,
        machine: Machine,
        discovery: Discovery,
        link: Connectivity,
        checklist: Callable[[], list[pre.Precondition]],
        take_inventory: Callable[[], None],
        events: EventLog,
        clock: Clock,
        wake_ticker: Callable[[], None],
    ) -> None:
        self._machine = machine
        self._discovery = discovery
        self._link = link
        self._checklist = checklist
        self._take_inventory = take_inventory
        self._events = events
        self._clock = clock
        self._wake_ticker = wake_ticker

    # ---- the table lookup ----------------------------------------------------------------------
    def _order(self, cmd: Command, st: State) -> Order:
        """What ``cmd`` does in ``st``, or its refusal."""
        refusal = REFUSALS.get(cmd, {}).get(st)
        if refusal == Refusal.NOT_DOWNLOADED:
            raise Conflict(refusal.value, "The update is not downloaded yet.", st.value)
        if refusal == Refusal.POINT_OF_NO_RETURN:
            raise Refused(refusal.value, PONR_DETAIL)
        order = COMMANDS[cmd].get(st)
        if order is None:
            raise Conflict(
                "campaign.illegal_in_state",
                f"{cmd.value} is not possible in state {st.value}",
                st.value,
            )
        return order

    def _run(
        self, cmd: Command, note: Note | None = None, **changes: Unpack[RecordChanges]
    ) -> None:
        """Fire what ``cmd`` does in the current state (atomically with the lookup)."""
        with self._machine.lock:
            order = self._order(cmd, self._machine.state)
            if order.ev is None:
                return  # already so
            reason = self._machine.reason if order.keep_reason else order.reason
            if Clears.SCHEDULE in order.clears:
                changes["schedule"] = None
            if Clears.IMAGES in order.clears:
                changes["images"] = None
            if Clears.INSTALL in order.clears:
                changes["install"] = {}
            entry: Note | None = None
            if order.note:
                entry = Note(by=order.by) if order.by else Note()
                entry.update(note or {})
            self._machine.fire(order.ev, reason, note=entry, **changes)

    # ---- commands ------------------------------------------------------------------------------
    def check(self) -> CheckResult:
        """Look for an update now; refused with ``no_connection`` when offline."""
        return self._discovery.check()

    def download_start(self) -> None:
        """Start downloading the available update ("Install Update" on the notification)."""
        self._run(Command.DOWNLOAD)
        self._link.gate()

    def download_pause(self) -> None:
        """Pause the download (the partial file is kept)."""
        self._run(Command.PAUSE)

    def download_resume(self) -> None:
        """Resume a paused download (from the first byte not yet on disk)."""
        self._run(Command.RESUME)
        self._link.gate()

    def download_cancel(self) -> None:
        """Drop the download (and any schedule); the update stays available."""
        self._run(Command.DROP_DOWNLOAD)

    def allow_cellular(self, allowed: bool) -> None:
        """The driver's permission to download over a metered link (persisted)."""
        self._machine.update(cellular_allowed=bool(allowed))
        self._events.append("cellular_allowed", {"allowed": bool(allowed)})
        self._wake_ticker()

    def install(self, confirm: bool) -> None:
        """Install now: needs the driver's confirmation and every precondition."""
        self._order(Command.INSTALL, self._machine.state)
        if not confirm:
            try:
                self._run(Command.REQUEST_INSTALL)
            except Conflict:
                pass  # the state moved on meanwhile: the refusal below still holds
            raise Refused(
                "campaign.confirmation_required", "The driver must confirm the installation."
            )
        failing = pre.failing(self._checklist())
        if failing:
            self._events.append("install_refused", {"failing": [f.id for f in failing]})
            raise Refused(
                "campaign.preconditions_not_met",
                "; ".join(f.hint for f in failing),
                failing=[
                    FailingCheck(
                        id=f.id,
                        ok=f.ok,
                        value=f.value,
                        required=f.required,
                        hint=f.hint,
                        status=f.status.value,
                        signals=list(f.signals),
                    )
                    for f in failing
                ],
            )
        self._run(Command.INSTALL)

    def schedule(self, at: datetime) -> None:
        """Install at ``at`` (aware datetime; naive = local time)."""
        ts = (at if at.tzinfo else at.astimezone()).timestamp()
        if ts < self._clock.now() - PAST_GRACE_S:
            raise Refused("campaign.schedule_in_past", "Pick a time in the future.")
        self._run(Command.SCHEDULE, Note(at=iso(ts)), schedule=sch.new_schedule(ts))
        if self._machine.state == State.DOWNLOADING:
            self._link.gate()

    def unschedule(self) -> None:
        """Drop the scheduled install."""
        if self._machine.record().schedule is None:
            raise NotFound("campaign.no_schedule", "Nothing is scheduled.")
        self._run(Command.UNSCHEDULE)

    def cancel(self) -> None:
        """Stop what is going on, before the point of no return only."""
        self._run(Command.CANCEL)

    def acknowledge(self) -> None:
        """Dismiss a finished campaign (succeeded / failed): back to idle."""
        self._run(Command.ACKNOWLEDGE)

    def refresh_ecus(self) -> None:
        """Ask every ECU for a fresh signed report (not during an install)."""
        st = self._machine.state
        if st in INSTALL_STATES:
            raise Conflict("campaign.installing", "ECU lines are busy installing", st.value)
        self._take_inventory()
