"""Looking for an update: the update layer's verified plan, fired into the machine.

One check at a time (the driver's ``check`` and the ticker's periodic one share the lock). A
check runs only in the states the table lets ``check_found`` in; offline it is refused with
``campaign.no_connection``; a plan the update layer refuses (trust) is refused with its code and
noted in the history. A plan this vehicle already finished, or whose images every ECU already
runs, is no update.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from otalink.host.errors import Refused
from otalink.host.gateway.campaign.clock import Clock
from otalink.host.gateway.campaign.connectivity import Connectivity
from otalink.host.gateway.campaign.delivery import refine
from otalink.host.gateway.campaign.events import EventLog
from otalink.host.gateway.campaign.inventory import Inventory
from otalink.host.gateway.campaign.machine import Machine
from otalink.host.gateway.campaign.source import UpdateSource
from otalink.host.gateway.campaign.table import CHECK_STATES, Ev, State
from otalink.host.gateway.update import errors as uerr
from otalink.host.gateway.update.types import UpdatePlan

NO_CONNECTION = "A stable connection is required."


@dataclass(frozen=True)
class CheckResult:
    """What a check found: ``checked`` False when the campaign's state does not allow one."""

    available: bool
    checked: bool


def plan_version(plan: UpdatePlan) -> str:
    """The version the screen shows for a plan (its ECUs' versions, joined when they differ)."""
    versions = sorted({a.version for a in plan.assignments})
    return versions[0] if len(versions) == 1 else " / ".join(versions)


class Discovery:
    """The update check (``Commands.check`` and the ticker call it)."""

    def __init__(
        self,
        machine: Machine,
        source: Callable[[], UpdateSource],
        inventory: Inventory,
        link: Connectivity,
        events: EventLog,
        clock: Clock,
    ) -> None:
        self._machine = machine
        self._source = source
        self._inventory = inventory
        self._link = link
        self._events = events
        self._clock = clock
        self._lock = threading.Lock()
        self.last_check = 0.0  # clock time of the last check (the ticker's interval)

    def check(self) -> CheckResult:
        """Look for an update now; refused with ``no_connection`` when offline."""
        with self._lock:
            return self._check()

    def check_if_idle(self) -> None:
        """The periodic check: skipped while another one runs; refusals are only events."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            self._check()
        except Refused:
            pass
        finally:
            self._lock.release()

    def _check(self) -> CheckResult:
        st = self._machine.state
        self.last_check = self._clock.now()
        if st not in CHECK_STATES:
            return CheckResult(self._machine.record().plan is not None, False)
        if self._link.network() == "none":
            self._events.append("check_failed", {"reason": "no_connection"})
            raise Refused("campaign.no_connection", NO_CONNECTION)
        try:
            plan = self._source().check(installed=self._inventory.installed())
        except uerr.DownloadError as exc:
            self._events.append("check_failed", {"reason": exc.reason, "code": exc.code})
            raise Refused("campaign.no_connection", NO_CONNECTION) from exc
        except uerr.TrustError as exc:
            self._events.append("check_refused", {"code": exc.code, "detail": exc.message})
            self._machine.remember("check_refused", exc.code)
            raise Refused(exc.code, exc.message) from exc
        if plan is not None:
            plan = refine(plan, self._inventory)  # a patch only where the ECU's report allows
        if plan is not None and self._done(plan):
            plan = None
        if plan is None:
            if self._machine.state == State.AVAILABLE:
                self._machine.try_fire(Ev.CHECK_NONE, "withdrawn", plan=None)
            return CheckResult(False, True)
        rec = self._machine.record()
        same = rec.plan is not None and rec.plan.plan_id == plan.plan_id
        if rec.state == State.AVAILABLE and same:
            return CheckResult(True, True)
        self._machine.try_fire(
            Ev.CHECK_FOUND,
            None,
            note={"plan_id": plan.plan_id, "version": plan_version(plan)},
            plan=plan,
            images=None,
            schedule=None,
            install={},
            result=None,
            report_queued=False,
        )
        return CheckResult(True, True)

    def _done(self, plan: UpdatePlan) -> bool:
        """A plan this vehicle already finished (or whose images every ECU already runs)."""
        return plan.plan_id in self._machine.record().finished_plans or self._inventory.runs(plan)
