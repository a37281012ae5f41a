"""The installer: the step of each install state (``table.STEPS``), run against the ECUs.

Every step starts from the ECUs' own signed reports (fresh nonce), never from what the host
believes it did, so a step is safe to run again after a crash. The loop guard (Mender's): each
start of a step is counted in the record before it runs; a step that started ``LOOP_MAX`` times
in one state (it keeps failing, or the host keeps dying in it) ends the campaign: before the
point of no return back to ``downloaded``, after it in ``failed_needs_service``.

The ECU fleet is used through its public calls only (``transfer``, ``abort``, ``activate``,
``reboot``, ``settle``, ``confirm``, ``revert``, ``wait_old``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path

from otalink.host.gateway.campaign import preconditions as pre
from otalink.host.gateway.campaign.clock import Clock
from otalink.host.gateway.campaign.delivery import DeltaSender, FetchFull
from otalink.host.gateway.campaign.events import EventLog
from otalink.host.gateway.campaign.inventory import Inventory
from otalink.host.gateway.campaign.machine import Machine
from otalink.host.gateway.campaign.probe import probe_once
from otalink.host.gateway.campaign.progress import InstallTracker
from otalink.host.gateway.campaign.record import CampaignResult, EcuOutcome, FailingItem, Phase
from otalink.host.gateway.campaign.table import (
    GIVE_UP,
    INSTALL_STATES,
    LOOP_MAX,
    STEPS,
    TABLE,
    Ev,
    State,
    Step,
)
from otalink.host.gateway.config import PolicyConfig
from otalink.host.gateway.ecu import fleet as fl
from otalink.host.gateway.ecu.errors import EcuError
from otalink.host.gateway.update.types import EcuAssignment

POLL_S = 0.5
RETRY_S = 0.5  # pause before a failed step runs again
WATCH_S = 0.1  # watched preconditions are checked this often during the transfer
CONFIRM_TRIES = 3
FINISHED_KEPT = 50


class Installer:
    """The install worker (``run`` in its own thread)."""

    def __init__(
        self,
        policy: PolicyConfig,
        machine: Machine,
        fleet: fl.Fleet,
        inventory: Inventory,
        tracker: InstallTracker,
        checklist: pre.Checklist,
        take_inventory: Callable[[], None],
        events: EventLog,
        clock: Clock,
        fetch_full: FetchFull | None = None,
    ) -> None:
        self._policy = policy
        self._fetch_full = fetch_full
        self._machine = machine
        self._fleet = fleet
        self._inventory = inventory
        self._tracker = tracker
        self._checklist = checklist
        self._take_inventory = take_inventory
        self._events = events
        self._clock = clock
        self.wake = threading.Event()
        self._inventory_due = True  # an inventory once after start, outside an install

    def run(self, stop: threading.Event) -> None:
        """Run the step of the persisted state whenever woken, until ``stop``."""
        while not stop.is_set():
            self._clock.wait(self.wake, POLL_S)
            self.wake.clear()
            if stop.is_set():
                return
            st = self._machine.state
            try:
                self._turn(st, stop)
            except Exception as exc:
                self._events.append("agent_error", {"where": "installer", "error": repr(exc)})
                if stop.is_set():
                    return
                if st in INSTALL_STATES:
                    self._machine.attempt_failed(st, type(exc).__name__)
                self._clock.wait(stop, RETRY_S)
                self.wake.set()

    def _turn(self, st: State, stop: threading.Event) -> None:
        step = STEPS.get(st)
        if step is None:
            if self._inventory_due:
                self._inventory_due = False
                self._take_inventory()
            return
        loop = self._machine.count_attempt(st)
        if loop.count > LOOP_MAX:
            why = f"agent_error:{loop.error}" if loop.error else f"loop_guard:{st.value}"
            self._give_up(st, why)
            return
        STEP_HANDLERS[step](self, stop)

    def _give_up(self, st: State, why: str) -> None:
        self._events.append("loop_guard", {"state": st.value, "reason": why})
        ev = GIVE_UP[st]
        if ev == Ev.INSTALL_FAILED:
            self._machine.try_fire(ev, why, note={"nothing_changed": True})
            return
        self._finish(ev, why, self._assignments()[0])

    def _assignments(self) -> tuple[list[EcuAssignment], dict[str, Path]]:
        rec = self._machine.record()
        if rec.plan is None:
            return [], {}
        images = {k: Path(v) for k, v in (rec.images or {}).items()}
        return list(rec.plan.assignments), images

    # ---- before the point of no return ----------------------------------------------------------
    def _should_stop(self, stop: threading.Event) -> Callable[[], str | None]:
        last = [float("-inf")]

        def should_stop() -> str | None:
            if stop.is_set():
                return "agent_stopping"
            if self._machine.state != State.INSTALLING:
                return "cancelled"
            now = self._clock.monotonic()
            if now - last[0] >= WATCH_S:
                last[0] = now
                bad = pre.failing(self._checklist(), pre.WATCHED)
                if bad:
                    return "precondition:" + bad[0].id
            return None

        return should_stop

    def _transfer(self, stop: threading.Event) -> None:
        assignments, images = self._assignments()
        self._tracker.start(a.ecu_id for a in assignments)
        plan = self._machine.record().plan
        send = None
        if plan is not None and self._fetch_full is not None:
            send = DeltaSender(plan, self._fetch_full, self._events, self._tracker.on_progress)
        try:
            self._fleet.transfer(assignments, images, self._should_stop(stop), send)
        except fl.StopRequested as s:
            if s.reason == "agent_stopping":
                return
            if s.reason == "cancelled":
                if self._machine.reason == "cancelled":
                    with contextlib.suppress(Exception):
                        self._fleet.abort([a.ecu_id for a in assignments])
                self._events.append("install_stopped", {"reason": self._machine.reason})
                return
            self._precondition_broken(s.reason)
            return
        except fl.FleetError as exc:
            self._machine.try_fire(
                Ev.INSTALL_FAILED,
                f"ecu_failed:{exc.ecu_id}:{exc.code}",
                note={"ecu_id": exc.ecu_id, "code": exc.code, "nothing_changed": True},
            )
            self._tracker.failed(exc.ecu_id, exc.code)
            return
        bad = pre.failing(self._checklist(), pre.WATCHED)
        if bad:
            self._precondition_broken("precondition:" + bad[0].id)
            return
        self._machine.try_fire(Ev.POINT_OF_NO_RETURN, None, note={})

    def _precondition_broken(self, reason: str) -> None:
        failing = pre.failing(self._checklist(), pre.WATCHED)
        self._machine.try_fire(
            Ev.PRECONDITION_BROKEN,
            reason,
            note={
                "failing": [FailingItem(id=f.id, hint=f.hint) for f in failing],
                "nothing_changed": True,
            },
        )

    # ---- after it --------------------------------------------------------------------------------
    def _activate(self, stop: threading.Event) -> None:
        assignments, _ = self._assignments()
        res = self._fleet.activate(assignments)
        ok = (fl.PENDING, fl.TRIAL, fl.CONFIRMED)
        bad = [a.ecu_id for a in assignments if res.get(a.ecu_id) not in ok]
        if bad:
            # An ECU that cannot be activated (or already rejected the image): undo the others.
            self._rollback(assignments, bad[0], f"activate:{res.get(bad[0], 'unreachable')}")
            return
        self._fleet.reboot(assignments)
        self._machine.try_fire(Ev.REBOOT_SENT, None, note={})

    def _restart(self, stop: threading.Event) -> None:
        assignments, _ = self._assignments()
        res = self._fleet.settle(assignments, self._policy.restart_timeout_s)
        lost = [i for i, c in res.items() if c == "unreachable"]
        if lost:
            self._finish(Ev.NEEDS_SERVICE, f"ecu_unreachable:{lost[0]}", assignments)
            return
        self._machine.try_fire(Ev.ECUS_BACK, None, note={})

    def _verify(self, stop: threading.Event) -> None:
        assignments, _ = self._assignments()
        res = self._fleet.settle(assignments, self._policy.restart_timeout_s)
        for i, c in res.items():
            if c == fl.TRIAL:
                self._tracker.on_progress(i, {"phase": Phase.TRIAL, "percent": 100.0})
        failed = [i for i, c in res.items() if c not in (fl.TRIAL, fl.CONFIRMED)]
        if failed:
            why = res[failed[0]]
            latest = self._inventory.latest(failed[0])
            if latest is not None and latest.last_error:
                why = f"{why}:{latest.last_error}"
            self._rollback(assignments, failed[0], why)
            return
        bad_probe = self._probe(assignments, res)
        if bad_probe is not None:
            self._rollback(assignments, *bad_probe)
            return
        for _attempt in range(CONFIRM_TRIES):
            conf = self._fleet.confirm(assignments)
            if all(conf.get(a.ecu_id) == fl.CONFIRMED for a in assignments):
                self._finish(Ev.VERIFY_OK, None, assignments)
                return
        self._finish(Ev.NEEDS_SERVICE, "confirm_failed", assignments)

    def _probe(
        self, assignments: list[EcuAssignment], res: dict[str, str]
    ) -> tuple[str, str] | None:
        """The receive probe before CONFIRM (docs/protocol.md 7.1) of each ECU on trial whose
        signed report shows another agent than before the campaign (the inventory's): the new
        agent must still receive an update. Every such ECU is probed; the first that failed:
        (ecu_id, why); the REVERT then rolls back with the device's E_PROBE_FAILED. What is
        sent does not depend on how the ECU was updated (``probe.py``)."""
        bad: list[tuple[str, str]] = []
        for a in assignments:
            line = self._fleet.lines[a.ecu_id]
            now, before = line.last_report, self._inventory.get(a.ecu_id)
            if res.get(a.ecu_id) != fl.TRIAL or now is None:
                continue
            if before is not None and before.agent_version == now.agent_version:
                continue
            old = before.agent_version if before else None
            note = {"ecu_id": a.ecu_id, "agent_version": now.agent_version, "before": old}
            self._events.append("ecu_probe", note)
            try:
                r = probe_once(line)
            except EcuError as exc:
                self._events.append("ecu_probe_done", {**note, "ok": False, "error": exc.code})
                bad.append((a.ecu_id, f"probe_failed:{exc.code}"))
                continue
            sent = {"image_len": r.image_len, "wire_bytes": r.wire_bytes, "seconds": r.seconds}
            self._events.append("ecu_probe_done", {**note, "ok": r.ok, **sent})
            if not r.ok:
                bad.append((a.ecu_id, "probe_failed"))
        return bad[0] if bad else None

    def _rollback(self, assignments: list[EcuAssignment], culprit: str, why: str) -> None:
        self._tracker.failed(culprit, why)
        self._events.append("rolling_back", {"ecu_id": culprit, "why": why})
        res = self._fleet.revert(assignments)
        # an ECU that refused the REVERT (e.g. e_no_image) will not come back: don't wait for it
        refused = {
            i: c[len(fl.REVERT_REFUSED) :]
            for i, c in res.items()
            if c.startswith(fl.REVERT_REFUSED)
        }
        waiting = [a for a in assignments if a.ecu_id not in refused]
        back = self._fleet.wait_old(waiting, self._policy.restart_timeout_s)
        for i, ok in back.items():
            if ok and i != culprit:
                self._tracker.on_progress(i, {"phase": Phase.REVERTED, "percent": 100.0})
        reason = f"ecu_failed:{culprit}:{why}"
        stuck = [i for i, ok in back.items() if not ok]
        if not refused and not stuck:
            self._finish(Ev.ROLLED_BACK, reason, assignments)
            return
        for i, code in refused.items():
            self._tracker.failed(i, code)
        if refused:
            reason += ";revert_refused:" + ",".join(f"{i}:{c}" for i, c in refused.items())
        if stuck:
            reason += ";not_reverted:" + ",".join(stuck)
        self._finish(Ev.NEEDS_SERVICE, reason, assignments)

    def _finish(self, ev: Ev, reason: str | None, assignments: list[EcuAssignment]) -> None:
        """End the campaign with ``ev``: the result from each ECU's latest signed report."""
        phases = self._tracker.ecus()
        ecus: dict[str, EcuOutcome] = {}
        for a in assignments:
            r = self._inventory.latest(a.ecu_id)
            ecus[a.ecu_id] = EcuOutcome.of(
                a.version,
                r.version if r else None,
                r.last_error if r else None,
                phases.get(a.ecu_id),
            )
        self._inventory.save()
        rec = self._machine.record()
        tr = TABLE.get((rec.state, ev))
        if tr is None:
            return  # the state moved on meanwhile
        finished = rec.finished_plans
        if rec.plan is not None and rec.plan.plan_id not in finished:
            finished = (*finished, rec.plan.plan_id)[-FINISHED_KEPT:]
        result = CampaignResult(state=tr.next, reason=reason, ecus=ecus, ts=self._clock.now())
        self._machine.try_fire(
            ev,
            reason,
            note={"result": tr.next, "ecus": ecus},
            result=result,
            finished_plans=finished,
            install=phases,
        )


# The installer's step per state (``table.STEPS``): every step needs its handler.
STEP_HANDLERS: dict[Step, Callable[[Installer, threading.Event], None]] = {
    Step.TRANSFER: Installer._transfer,
    Step.ACTIVATE: Installer._activate,
    Step.RESTART: Installer._restart,
    Step.VERIFY: Installer._verify,
}
if set(STEP_HANDLERS) != set(Step):
    raise TypeError(f"installer steps without a handler: {set(Step) - set(STEP_HANDLERS)}")
