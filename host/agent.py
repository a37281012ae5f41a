"""The host agent: the orchestrator the local API, the screen and the CLI call.

Public interface (stable; the ui builds on it):

    Agent(config: AgentConfig, *, clock=None, source=None, client_factory=None)
    start() / stop()                 background workers: ticker (checks, scheduler, auto-resume,
                                     report outbox), downloader, installer
    status() -> dict                 state, reason, update, download{bytes,total,rate,eta_s,active,
                                     percent}, install{ecus{id:{phase,percent}},
                                     overall_percent, point_of_no_return}, schedule, network,
                                     cellular_allowed, result, last_event_id, legal
    update_details() -> dict | None  version, title, release_notes, download_size, est_install_s,
                                     unavailable_functions, network_policy, ecus
    check() -> dict; download_start(); download_pause(); download_resume(); download_cancel()
    allow_cellular(allowed: bool)
    preconditions() -> list[dict]    {id, ok, value, required, hint, status, signals}
    install(confirm: bool) -> None   Refused(confirmation_required | preconditions_not_met ...)
    schedule(at: datetime); unschedule(); cancel()
                                     cancel after the PONR: Refused(point_of_no_return)
    acknowledge()                    dismiss a finished campaign (back to idle)
    history() -> list[dict]; ecus() -> list[dict]; refresh_ecus() -> list[dict]
    events: EventLog                 append-only, ids increase; subscribe(since_id)
    signals: SignalSource            set(path, value), get(path), snapshot()

Errors: ``Refused``, ``NotFound``, ``Conflict`` (``otalink.host.campaign.errors``), each with a
stable ``code``. ``source``/``client_factory`` are optional injections (tests, tools); by default
the update layer's ``UpdateClient`` and one ``EcuClient`` per configured serial URL are used.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from otalink.host.campaign import fleet as fl
from otalink.host.campaign import preconditions as pre
from otalink.host.campaign import reports as rep
from otalink.host.campaign import scheduler as sch
from otalink.host.campaign.clock import Clock, SystemClock
from otalink.host.campaign.errors import Conflict, NotFound, Refused
from otalink.host.campaign.events import EventLog
from otalink.host.campaign.machine import INSTALL_STATES, PONR_STATES, TERMINAL, Ev, Machine
from otalink.host.campaign.machine import State as S
from otalink.host.campaign.source import UpdateSource, update_config
from otalink.host.campaign.store import atomic_write_json, read_json
from otalink.host.config import AgentConfig
from otalink.host.update import errors as uerr
from otalink.host.update.types import DownloadProgress, EcuAssignment, UpdatePlan
from otalink.host.vehicle.signals import PARKED_DEFAULTS, SignalSource

# download_paused reasons the agent leaves by itself once the link allows it again
AUTO_RESUME = frozenset({"no_connection", "unstable", "cellular_not_allowed", "server_unreachable"})
SERVER_RETRY_S = 30.0
TICK_S = 0.2
PHASE_WEIGHT = {
    "waiting": 0.0,
    "verified": 80.0,
    "activated": 85.0,
    "restarting": 90.0,
    "trial": 95.0,
    "confirmed": 100.0,
    "reverted": 100.0,
    "up_to_date": 100.0,
}


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


class Agent:
    """The campaign orchestrator (one per vehicle gateway)."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        clock: Clock | None = None,
        source: UpdateSource | None = None,
        client_factory: fl.ClientFactory | None = None,
    ) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.state_dir = config.state_dir
        self.state_dir.mkdir(parents=True, exist_ok=True)
        now = self.clock.now
        self.events = EventLog(self.state_dir / "events.jsonl", now)
        self.signals = SignalSource(
            now,
            config.policy.signal_max_age_s,
            initial=PARKED_DEFAULTS if config.simulated_signals else None,
        )
        self.machine = Machine(self.state_dir / "campaign.json", now, self._on_transition)
        self.fleet = fl.Fleet(
            config.ecus,
            client_factory
            or (lambda e: fl.default_client(e, timeout=min(config.policy.ecu_timeout_s, 5.0))),
            on_progress=self._ecu_progress,
            log=self._log,
        )
        self._source = source
        self._outbox = rep.Outbox(self.state_dir, config.server_url, config.vehicle_id)
        self._stop = threading.Event()
        self._wake_dl = threading.Event()
        self._wake_inst = threading.Event()
        self._wake_tick = threading.Event()
        self._dl_stop = threading.Event()
        self._discard = threading.Event()
        self._check_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._plan_cache: tuple[str, UpdatePlan] | None = None
        self._dl: dict[str, Any] = {"bytes": 0, "total": 0, "rate": 0.0, "eta_s": None}
        self._dl_active = False
        self._inst: dict[str, dict[str, Any]] = dict(self.machine.get("install") or {})
        self._inst_lock = threading.Lock()  # ECU threads update _inst while status() reads it
        self._last_check = 0.0
        self._last_flush = 0.0
        self._server_retry_at = 0.0
        self._inventory_due = True
        self._ecu_cache: dict[str, Any] = read_json(self.state_dir / "ecus.json") or {}
        self._gateway_key: Any = None

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the background workers (resuming whatever the persisted state says)."""
        if self._threads:
            return
        self._stop.clear()
        self.events.append("agent_started", {"state": self.machine.state.value})
        st = self.machine.state
        if st in TERMINAL and not self.machine.get("report_queued"):
            self._make_report(self.machine.record())
        for name, fn in (
            ("otalink-ticker", self._ticker),
            ("otalink-downloader", self._downloader),
            ("otalink-installer", self._installer),
        ):
            t = threading.Thread(target=fn, name=name, daemon=True)
            self._threads.append(t)
            t.start()
        self._wake_dl.set()
        self._wake_inst.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the workers; persisted state is left as is (a restart resumes it)."""
        self._stop.set()
        self._dl_stop.set()
        for ev in (self._wake_dl, self._wake_inst, self._wake_tick):
            ev.set()
        for t in self._threads:
            t.join(timeout)
        self._threads = []
        self.fleet.close()

    def __enter__(self) -> Agent:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- plumbing ----------------------------------------------------------------------------
    @property
    def source(self) -> UpdateSource:
        """The update layer (built on first use from the configuration)."""
        if self._source is None:
            from otalink.host.update.client import UpdateClient

            floors = {k: int(v.get("release_floor", 0)) for k, v in self._ecu_cache.items()}
            self._source = UpdateClient(update_config(self.config, floors))
        assert self._source is not None
        return self._source

    def _log(self, type_: str, data: dict[str, Any]) -> None:
        self.events.append(type_, data)

    def _on_transition(self, cur: S, ev: Ev, tr: Any, rec: dict[str, Any]) -> None:
        self.events.append(
            "state",
            {
                "state": rec["state"],
                "from": cur.value,
                "event": ev.value,
                "reason": rec["reason"],
                "point_of_no_return": S(rec["state"]) in PONR_STATES,
            },
        )
        action = tr.action
        if action == "announce":
            self.events.append("update_available", self._summary(rec) or {})
        elif action == "wake_downloader":
            self._dl_stop.clear()
            self._wake_dl.set()
        elif action == "stop_downloader":
            self._dl_stop.set()
        elif action == "discard_download":
            self._dl_stop.set()
            self._discard.set()
            self._wake_dl.set()
        elif action == "prompt_confirm":
            self.events.append("confirmation_required", {"preconditions": self.preconditions()})
        elif action == "wake_scheduler":
            self._wake_tick.set()
        elif action == "wake_installer" or action == "abort_ecus":
            self._wake_inst.set()
        elif action == "report":
            self._make_report(rec)
            self._wake_tick.set()

    def _fire(self, ev: Ev, reason: str | None = None, **kw: Any) -> bool:
        """Fire from a worker: False (nothing changed) if the state moved on meanwhile."""
        try:
            self.machine.fire(ev, reason, **kw)
            return True
        except Conflict:
            return False

    def _plan(self) -> UpdatePlan | None:
        text = self.machine.get("plan")
        if not text:
            return None
        if self._plan_cache is None or self._plan_cache[0] != text:
            self._plan_cache = (text, UpdatePlan.from_json(text))
        return self._plan_cache[1]

    def _summary(self, rec: dict[str, Any]) -> dict[str, Any] | None:
        text = rec.get("plan")
        if not text:
            return None
        plan = UpdatePlan.from_json(text)
        return {
            "plan_id": plan.plan_id,
            "version": self._version(plan),
            "title": plan.title,
            "download_size": plan.download_size,
            "est_install_s": plan.est_install_s,
        }

    @staticmethod
    def _version(plan: UpdatePlan) -> str:
        versions = sorted({a.version for a in plan.assignments})
        return versions[0] if len(versions) == 1 else " / ".join(versions)

    def _network(self) -> str:
        return pre.network(self.signals)

    def _cellular_allowed(self) -> bool:
        v = self.machine.get("cellular_allowed")
        return bool(self.config.policy.cellular_allowed if v is None else v)

    # ---- queries -----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Everything the screen shows at a glance (JSON-able)."""
        rec = self.machine.record()
        st = S(rec["state"])
        ecus = self._inst_copy()
        overall = self._overall()
        dl = dict(self._dl)
        dl["active"] = self._dl_active
        total = dl.get("total") or 0
        dl["percent"] = round(100.0 * dl["bytes"] / total, 1) if total else None
        sched = rec.get("schedule")
        return {
            "state": st.value,
            "reason": rec["reason"],
            "since": rec.get("since"),
            "campaign_id": rec.get("campaign_id"),
            "update": self._summary(rec),
            "download": dl,
            "install": {
                "ecus": ecus,
                "overall_percent": overall,
                "point_of_no_return": st in PONR_STATES,
            },
            "point_of_no_return": st in PONR_STATES,
            "schedule": None
            if not sched
            else {
                "at": _iso(sched["at"]),
                "at_ts": sched["at"],
                "next_at": _iso(sched["next_at"]),
                "attempts": sched.get("attempts", 0),
                "misses": sched.get("misses", []),
            },
            "network": self._network(),
            "cellular_allowed": self._cellular_allowed(),
            "result": rec.get("result"),
            "last_event_id": self.events.last_id,
            "legal": [e.value for e in _legal(st)],
        }

    def _inst_copy(self) -> dict[str, dict[str, Any]]:
        with self._inst_lock:
            return {i: dict(v) for i, v in self._inst.items()}

    def _overall(self) -> float | None:
        vals = [self._ecu_percent(v) for v in self._inst_copy().values()]
        return round(sum(vals) / len(vals), 1) if vals else None

    @staticmethod
    def _ecu_percent(v: dict[str, Any]) -> float:
        phase = v.get("phase", "waiting")
        if phase == "transferring":
            return 0.8 * float(v.get("percent") or 0.0)
        if phase in ("failed",):
            return float(v.get("percent") or 0.0)
        return PHASE_WEIGHT.get(phase, 0.0)

    def update_details(self) -> dict[str, Any] | None:
        """The available update, as the details screen shows it (None if there is none)."""
        plan = self._plan()
        if plan is None:
            return None
        ecus = []
        for a in plan.assignments:
            img = plan.images.get(a.target)
            cur = self._ecu_cache.get(a.ecu_id, {})
            ecus.append(
                {
                    "ecu_id": a.ecu_id,
                    "hardware_id": a.hw_id,
                    "from_version": cur.get("version"),
                    "to_version": a.version,
                    "target": a.target,
                    "size": a.length,
                    "title": img.title if img else a.target,
                }
            )
        return {
            "plan_id": plan.plan_id,
            "version": self._version(plan),
            "title": plan.title,
            "release_notes": plan.release_notes,
            "download_size": plan.download_size,
            "est_install_s": plan.est_install_s,
            "unavailable_functions": list(plan.unavailable_functions),
            "network_policy": {
                "network": self._network(),
                "cellular_allowed": self._cellular_allowed(),
                "cellular_needs_permission": True,
            },
            "ecus": ecus,
        }

    def preconditions(self) -> list[dict[str, Any]]:
        """The install checklist, evaluated now."""
        return pre.evaluate(self.signals, self.config.policy)

    def history(self) -> list[dict[str, Any]]:
        """Past transitions worth telling the driver (oldest first)."""
        h = self.machine.get("history")
        return list(h) if isinstance(h, list) else []

    def ecus(self) -> list[dict[str, Any]]:
        """Each configured ECU: versions from its last signed report, and link health.

        ``link.ok`` is True unless each of the last ``fleet.HEALTH_WINDOW`` (3) requests on the
        line failed (False before the first answer); ``link.errors`` counts every failure."""
        out = []
        for e in self.config.ecus:
            line = self.fleet.lines[e.ecu_id]
            cached = self._ecu_cache.get(e.ecu_id, {})
            h = line.health
            out.append(
                {
                    "ecu_id": e.ecu_id,
                    "hardware_id": e.hardware_id,
                    "port": e.port,
                    "version": cached.get("version"),
                    "slots": cached.get("slots"),
                    "active_slot": cached.get("active_slot"),
                    "boot_state": cached.get("boot_state"),
                    "last_error": cached.get("last_error"),
                    "release_floor": cached.get("release_floor"),
                    "report_ts": cached.get("ts"),
                    "report_verified": cached.get("verified", False),
                    "link": {
                        "ok": h.ok,
                        "last_seen": h.last_seen,
                        "last_error": h.last_error,
                        "errors": h.errors,
                    },
                    "install": self._inst_copy().get(e.ecu_id),
                }
            )
        return out

    def refresh_ecus(self) -> list[dict[str, Any]]:
        """Ask every ECU for a fresh signed report (not during an install)."""
        if self.machine.state in INSTALL_STATES:
            raise Conflict("installing", "ECU lines are busy installing", self.machine.state.value)
        self._inventory()
        return self.ecus()

    # ---- commands ----------------------------------------------------------------------------
    def check(self) -> dict[str, Any]:
        """Look for an update now; refused with ``no_connection`` when offline."""
        with self._check_lock:
            return self._check()

    def _check(self) -> dict[str, Any]:
        st = self.machine.state
        self._last_check = self.clock.now()
        if st not in (S.IDLE, S.AVAILABLE, S.SUCCEEDED, S.FAILED_ROLLED_BACK):
            return {"available": self._plan() is not None, "checked": False, "state": st.value}
        if self._network() == "none":
            self.events.append("check_failed", {"reason": "no_connection"})
            raise Refused("no_connection", "A stable connection is required.")
        try:
            plan = self.source.check(installed=self._installed())
        except uerr.DownloadError as exc:
            self.events.append("check_failed", {"reason": exc.reason, "code": exc.code})
            raise Refused("no_connection", "A stable connection is required.") from exc
        except uerr.TrustError as exc:
            self.events.append("check_refused", {"code": exc.code, "detail": exc.message})
            self.machine.update(
                history=[
                    *self.history(),
                    {"ts": self.clock.now(), "event": "check_refused", "reason": exc.code},
                ][-200:]
            )
            raise Refused(exc.code, exc.message) from exc
        if plan is not None and self._already_done(plan):
            plan = None
        if plan is None:
            if self.machine.state == S.AVAILABLE:
                self._fire(Ev.CHECK_NONE, "withdrawn", updates={"plan": None})
            return {"available": False, "checked": True, "state": self.machine.state.value}
        cur = self._plan()
        if self.machine.state == S.AVAILABLE and cur is not None and cur.plan_id == plan.plan_id:
            return {"available": True, "checked": True, "update": self._summary_plan(plan)}
        self._fire(
            Ev.CHECK_FOUND,
            None,
            updates={
                "plan": plan.to_json(),
                "images": None,
                "schedule": None,
                "install": {},
                "result": None,
                "report_queued": False,
            },
            history={"plan_id": plan.plan_id, "version": self._version(plan)},
        )
        self._inst = {}
        self._dl = {"bytes": 0, "total": plan.download_size, "rate": 0.0, "eta_s": None}
        return {"available": True, "checked": True, "update": self._summary_plan(plan)}

    def _installed(self) -> dict[str, int]:
        """ecu_id -> release counter of the confirmed image each ECU last reported running."""
        out: dict[str, int] = {}
        for i, c in self._ecu_cache.items():
            if c.get("active_state") == 5 and c.get("verified"):
                slots = c.get("slots") or []
                act = c.get("active_slot", 0)
                if isinstance(slots, list) and len(slots) > act:
                    out[i] = int(slots[act].get("release_counter", 0))
        return out

    def _summary_plan(self, plan: UpdatePlan) -> dict[str, Any] | None:
        return self._summary({"plan": plan.to_json()})

    def _already_done(self, plan: UpdatePlan) -> bool:
        """A plan this vehicle already finished (or whose images every ECU already runs)."""
        done = self.machine.get("finished_plans") or []
        if plan.plan_id in done:
            return True
        for a in plan.assignments:
            c = self._ecu_cache.get(a.ecu_id)
            if not c or c.get("active_sha256") != a.sha256 or c.get("active_state") != 5:
                return False
        return bool(plan.assignments)

    def download_start(self) -> None:
        """Start downloading the available update ("Install Update" on the notification)."""
        st = self.machine.state
        if st == S.DOWNLOADING:
            return
        if st not in (S.AVAILABLE, S.DOWNLOAD_PAUSED):
            self._conflict("download_start")
        self.machine.fire(Ev.DOWNLOAD_START, None, history={})
        self._gate_link()

    def _gate_link(self) -> None:
        """Straight to download_paused(no_connection / cellular_not_allowed) when offline."""
        net = self._network()
        if net == "none":
            self._fire(Ev.CONNECTION_LOST, "no_connection", history={})
        elif net == "cellular" and not self._cellular_allowed():
            self._fire(Ev.METERED_BLOCKED, "cellular_not_allowed", history={})

    def download_pause(self) -> None:
        """Pause the download (the partial file is kept)."""
        if self.machine.state == S.DOWNLOAD_PAUSED:
            return
        self._require(Ev.DOWNLOAD_PAUSE)
        self.machine.fire(Ev.DOWNLOAD_PAUSE, "user")

    def download_resume(self) -> None:
        """Resume a paused download (from the first byte not yet on disk)."""
        if self.machine.state == S.DOWNLOADING:
            return
        self._require(Ev.DOWNLOAD_RESUME)
        self.machine.fire(Ev.DOWNLOAD_RESUME, None)
        self._gate_link()

    def download_cancel(self) -> None:
        """Drop the download (and any schedule); the update stays available."""
        self._require(Ev.DOWNLOAD_CANCEL)
        self.machine.fire(
            Ev.DOWNLOAD_CANCEL, "cancelled", updates={"schedule": None, "images": None}, history={}
        )
        self._dl["bytes"] = 0

    def allow_cellular(self, allowed: bool) -> None:
        """The driver's permission to download over a metered link (persisted)."""
        self.machine.update(cellular_allowed=bool(allowed))
        self.events.append("cellular_allowed", {"allowed": bool(allowed)})
        self._wake_tick.set()

    def install(self, confirm: bool) -> None:
        """Install now: needs the driver's confirmation and every precondition."""
        st = self.machine.state
        if st not in (S.DOWNLOADED, S.AWAITING_CONFIRMATION, S.SCHEDULED):
            if st in (S.AVAILABLE, S.DOWNLOADING, S.DOWNLOAD_PAUSED):
                raise Conflict("not_downloaded", "The update is not downloaded yet.", st.value)
            self._conflict("install")
        if not confirm:
            if st == S.DOWNLOADED:
                self._fire(Ev.REQUEST_INSTALL, "confirmation_required")
            raise Refused("confirmation_required", "The driver must confirm the installation.")
        failing = pre.failing(self.preconditions())
        if failing:
            self.events.append("install_refused", {"failing": [f["id"] for f in failing]})
            raise Refused(
                "preconditions_not_met",
                "; ".join(f["hint"] for f in failing),
                failing=failing,
            )
        self.machine.fire(
            Ev.CONFIRM_INSTALL, None, updates={"schedule": None}, history={"by": "driver"}
        )

    def schedule(self, at: datetime) -> None:
        """Install at ``at`` (aware datetime; naive = local time)."""
        ts = (at if at.tzinfo else at.astimezone()).timestamp()
        if ts < self.clock.now() - 60:
            raise Refused("schedule_in_past", "Pick a time in the future.")
        with self.machine.lock:
            self._require(Ev.SCHEDULE)
            self.machine.fire(
                Ev.SCHEDULE,
                self._kept_reason(),
                updates={"schedule": sch.new_schedule(ts)},
                history={"at": _iso(ts)},
            )
        if self.machine.state in (S.DOWNLOADING,):
            self._gate_link()

    def unschedule(self) -> None:
        """Drop the scheduled install."""
        if not self.machine.get("schedule"):
            raise NotFound("no_schedule", "Nothing is scheduled.")
        with self.machine.lock:
            self._require(Ev.UNSCHEDULE)
            keep = self.machine.state in (S.DOWNLOADING, S.DOWNLOAD_PAUSED)
            self.machine.fire(
                Ev.UNSCHEDULE,
                self._kept_reason() if keep else "unscheduled",
                updates={"schedule": None},
                history={},
            )

    def _kept_reason(self) -> str | None:
        """The reason a schedule change leaves in place: a paused download keeps why it is
        paused (``no_connection`` ... : the ticker resumes it by itself when the link returns);
        any other state gets none. Call with ``machine.lock`` held."""
        if self.machine.state in (S.DOWNLOADING, S.DOWNLOAD_PAUSED):
            return self.machine.reason
        return None

    def cancel(self) -> None:
        """Stop what is going on, before the point of no return only."""
        with self.machine.lock:
            st = self.machine.state
            if st in PONR_STATES:
                raise Refused(
                    "point_of_no_return",
                    "The ECUs are being activated; stopping now could leave the vehicle "
                    "inconsistent. The update completes or rolls back by itself.",
                )
            if st == S.INSTALLING:
                self.machine.fire(Ev.CANCEL, "cancelled", history={"by": "driver"})
            elif st == S.SCHEDULED:
                self.machine.fire(
                    Ev.UNSCHEDULE, "unscheduled", updates={"schedule": None}, history={}
                )
            elif st == S.AWAITING_CONFIRMATION:
                self.machine.fire(Ev.DECLINE, "declined", history={})
            elif st in (S.DOWNLOADING, S.DOWNLOAD_PAUSED):
                self.machine.fire(
                    Ev.DOWNLOAD_CANCEL,
                    "cancelled",
                    updates={"schedule": None, "images": None},
                    history={},
                )
            else:
                self._conflict("cancel")

    def acknowledge(self) -> None:
        """Dismiss a finished campaign (succeeded / failed): back to idle."""
        self._require(Ev.ACKNOWLEDGE)
        self.machine.fire(Ev.ACKNOWLEDGE, None, updates={"install": {}})
        self._inst = {}

    def _require(self, ev: Ev) -> None:
        if not self.machine.can(ev):
            self._conflict(ev.value)

    def _conflict(self, what: str) -> None:
        st = self.machine.state
        raise Conflict("illegal_in_state", f"{what} is not possible in state {st.value}", st.value)

    # ---- ticker: checks, auto-resume, scheduler, reports -------------------------------------
    def _ticker(self) -> None:
        while not self._stop.is_set():
            self._wake_tick.wait(TICK_S)
            self._wake_tick.clear()
            if self._stop.is_set():
                return
            try:
                self._tick()
            except Exception as exc:  # a tick must never kill the agent
                self.events.append("agent_error", {"where": "ticker", "error": repr(exc)})

    def _tick(self) -> None:
        now = self.clock.now()
        if self.config.simulated_signals and self.config.simulated_live:
            self.signals.refresh()
        st = self.machine.state
        net = self._network()
        if (
            self.config.check_interval_s > 0
            and now - self._last_check >= self.config.check_interval_s
            and st in (S.IDLE, S.AVAILABLE, S.SUCCEEDED, S.FAILED_ROLLED_BACK)
            and net != "none"
            and self._check_lock.acquire(blocking=False)
        ):
            try:
                self._check()
            except Refused:
                pass
            finally:
                self._check_lock.release()
        if st == S.DOWNLOAD_PAUSED and self.machine.reason in AUTO_RESUME:
            ok = net == "wifi" or (net == "cellular" and self._cellular_allowed())
            if self.machine.reason == "server_unreachable" and now < self._server_retry_at:
                ok = False
            if ok:
                self._fire(Ev.CONNECTION_BACK, None, history={})
        if st == S.DOWNLOADING and (
            net == "none" or (net == "cellular" and not self._cellular_allowed())
        ):
            self._dl_stop.set()  # the downloader turns this into the right paused reason
        self._schedule_tick(now)
        if self._outbox.pending() and net != "none" and now - self._last_flush >= 2.0:
            self._last_flush = now
            sent, err = self._outbox.flush(timeout=3.0)
            if sent:
                self.events.append("reports_sent", {"count": sent})
            if err:
                self._last_flush = now + 10.0  # back off while the server is away

    def _schedule_tick(self, now: float) -> None:
        with self.machine.lock:
            st = self.machine.state
            sched = self.machine.get("schedule")
            if not sched:
                return
            fails: list[str] = []
            if st == S.SCHEDULED:
                fails = [f["id"] for f in pre.failing(self.preconditions())]
            elif st == S.DOWNLOAD_PAUSED and self.machine.reason:
                fails = [self.machine.reason]
            d = sch.decide(sched, now, st, fails, self.config.policy)
            if d.event is None:
                return
            if d.event == Ev.SCHEDULE_DUE:
                self.machine.fire(
                    d.event, None, updates={"schedule": None}, history={"at": _iso(sched["at"])}
                )
                return
            reason: str | None = "schedule_missed"
            if d.event != Ev.SCHEDULE_GAVE_UP or st in (S.DOWNLOADING, S.DOWNLOAD_PAUSED):
                reason = self.machine.reason  # a paused download keeps why it is paused
            self.machine.fire(
                d.event,
                reason,
                updates={"schedule": d.schedule},
                history={
                    "at": _iso(sched["at"]),
                    "missed": True,
                    "reasons": d.reasons,
                    "retry_at": _iso(d.schedule["next_at"]) if d.schedule else None,
                },
            )
            self.events.append(
                "schedule_missed",
                {
                    "at": _iso(sched["at"]),
                    "reasons": d.reasons,
                    "retry_at": _iso(d.schedule["next_at"]) if d.schedule else None,
                    "gave_up": d.event == Ev.SCHEDULE_GAVE_UP,
                },
            )

    # ---- downloader ----------------------------------------------------------------------------
    def _downloader(self) -> None:
        while not self._stop.is_set():
            self._wake_dl.wait(0.5)
            self._wake_dl.clear()
            if self._stop.is_set():
                return
            try:
                if self._discard.is_set() and self.machine.state not in (
                    S.DOWNLOADING,
                    S.DOWNLOAD_PAUSED,
                ):
                    self._discard.clear()
                    self._discard_files()
                if self.machine.state == S.DOWNLOADING:
                    try:
                        self._download_once()
                    finally:
                        self._dl_active = False
            except Exception as exc:
                self.events.append("agent_error", {"where": "downloader", "error": repr(exc)})
                self._fire(Ev.CONNECTION_LOST, "server_unreachable", history={})
                self._server_retry_at = self.clock.now() + SERVER_RETRY_S

    def _discard_files(self) -> None:
        """Delete every partial or complete download (cancelled / withdrawn update)."""
        self.source.discard(None)

    def _download_once(self) -> None:
        plan = self._plan()
        if plan is None:
            self._fire(Ev.DOWNLOAD_FAILED, "no_plan")
            return
        net = self._network()
        allowed = self._cellular_allowed()
        if net == "none":
            self._fire(Ev.CONNECTION_LOST, "no_connection", history={})
            return
        if net == "cellular" and not allowed:
            self._fire(Ev.METERED_BLOCKED, "cellular_not_allowed", history={})
            return
        self._dl_stop.clear()
        t0 = time.monotonic()

        def progress(p: DownloadProgress) -> None:
            rate = p.rate_bps
            left = max(0, p.overall_total - p.overall_done)
            self._dl = {
                "bytes": p.overall_done,
                "total": p.overall_total,
                "rate": round(rate, 1),
                "eta_s": round(left / rate, 1) if rate > 0 else None,
                "target": p.target,
                "resumed_from": p.resumed_from,
            }
            self.events.append("download_progress", dict(self._dl), durable=False)

        def should_stop() -> bool:
            if self._stop.is_set() or self._dl_stop.is_set():
                return True
            return self.machine.state != S.DOWNLOADING

        self._dl_active = True
        try:
            paths = self.source.download(
                plan,
                progress,
                should_stop,
                network="cellular" if net == "cellular" else "wifi",
                allow_metered=allowed,
            )
        except uerr.DownloadInterrupted:
            self._dl_active = False
            if self._stop.is_set() or self.machine.state != S.DOWNLOADING:
                return
            self._gate_link()
            return
        except uerr.NeedsPermissionError:
            self._fire(Ev.METERED_BLOCKED, "cellular_not_allowed", history={})
            return
        except uerr.ConnectivityError as exc:
            self._fire(Ev.CONNECTION_LOST, exc.reason or "no_connection", history={})
            return
        except uerr.HttpStatusError as exc:
            if exc.status >= 500:
                self._server_retry_at = self.clock.now() + SERVER_RETRY_S
                self._fire(Ev.CONNECTION_LOST, "server_unreachable", history={})
            else:
                self._fire(Ev.DOWNLOAD_FAILED, exc.reason, history={"code": exc.code})
            return
        except uerr.TrustError as exc:
            self.events.append("download_refused", {"code": exc.code, "detail": exc.message})
            self._fire(
                Ev.DOWNLOAD_FAILED, exc.code, history={"code": exc.code, "detail": exc.message}
            )
            return
        except uerr.DownloadError as exc:
            self._server_retry_at = self.clock.now() + SERVER_RETRY_S
            self._fire(Ev.CONNECTION_LOST, "server_unreachable", history={"code": exc.code})
            return
        images = {a.ecu_id: str(paths[a.target]) for a in plan.assignments}
        total = plan.download_size
        self._dl = {"bytes": total, "total": total, "rate": 0.0, "eta_s": 0}
        took = round(time.monotonic() - t0, 3)
        ev = Ev.DOWNLOAD_DONE_SCHEDULED if self.machine.get("schedule") else Ev.DOWNLOAD_DONE
        self._fire(ev, None, updates={"images": images}, history={"seconds": took})

    # ---- installer ---------------------------------------------------------------------------
    def _installer(self) -> None:
        failing_since: float | None = None  # first error of a PONR step still failing
        while not self._stop.is_set():
            self._wake_inst.wait(0.5)
            self._wake_inst.clear()
            if self._stop.is_set():
                return
            st = self.machine.state
            try:
                if st == S.INSTALLING:
                    self._step_transfer()
                elif st == S.INSTALLING_COMMITTED:
                    self._step_activate()
                elif st == S.RESTARTING:
                    self._step_restart()
                elif st == S.VERIFYING:
                    self._step_verify()
                elif self._inventory_due and st not in INSTALL_STATES:
                    self._inventory_due = False
                    self._inventory()
                failing_since = None
            except Exception as exc:
                self.events.append("agent_error", {"where": "installer", "error": repr(exc)})
                if self._stop.is_set():
                    return
                # after the PONR a step that keeps failing must still end the campaign
                now = time.monotonic()
                failing_since = failing_since if failing_since is not None else now
                if st in PONR_STATES and now - failing_since > self.config.policy.restart_timeout_s:
                    failing_since = None
                    with contextlib.suppress(Exception):
                        self._needs_service(
                            f"agent_error:{type(exc).__name__}", self._assignments()[0]
                        )
                time.sleep(0.5)
                self._wake_inst.set()

    def _assignments(self) -> tuple[list[EcuAssignment], dict[str, Path]]:
        plan = self._plan()
        images = self.machine.get("images") or {}
        if plan is None:
            return [], {}
        return list(plan.assignments), {k: Path(v) for k, v in images.items()}

    def _ecu_progress(self, ecu_id: str, data: dict[str, Any]) -> None:
        with self._inst_lock:
            cur = self._inst.setdefault(ecu_id, {"phase": "waiting", "percent": 0.0})
            phase_changed = cur.get("phase") != data.get("phase")
            cur.update(data)
        self.events.append(
            "install_progress",
            {
                "ecu_id": ecu_id,
                **data,
                "overall_percent": self.status()["install"]["overall_percent"],
            },
            durable=phase_changed,
        )
        if phase_changed:
            self.machine.update(install=self._inst_copy())

    def _set_phase(self, ids: list[str], phase: str) -> None:
        for i in ids:
            self._ecu_progress(i, {"phase": phase, "percent": 100.0})

    def _stop_reason(self) -> Callable[[], str | None]:
        last = [0.0]

        def should_stop() -> str | None:
            if self._stop.is_set():
                return "agent_stopping"
            if self.machine.state != S.INSTALLING:
                return "cancelled"
            now = time.monotonic()
            if now - last[0] >= 0.1:
                last[0] = now
                bad = pre.failing(self.preconditions(), pre.WATCHED)
                if bad:
                    return "precondition:" + str(bad[0]["id"])
            return None

        return should_stop

    def _step_transfer(self) -> None:
        assignments, images = self._assignments()
        with self._inst_lock:
            for a in assignments:
                self._inst.setdefault(a.ecu_id, {"phase": "waiting", "percent": 0.0})
        try:
            self.fleet.transfer(assignments, images, self._stop_reason())
        except fl.StopRequested as s:
            if s.reason == "agent_stopping":
                return
            if s.reason == "cancelled":
                if self.machine.reason == "cancelled":
                    with contextlib.suppress(Exception):
                        self.fleet.abort([a.ecu_id for a in assignments])
                self.events.append("install_stopped", {"reason": self.machine.reason})
                return
            self._precondition_broken(s.reason)
            return
        except fl.FleetError as exc:
            self._fire(
                Ev.INSTALL_FAILED,
                f"ecu_failed:{exc.ecu_id}:{exc.code}",
                history={"ecu_id": exc.ecu_id, "code": exc.code, "nothing_changed": True},
            )
            self._set_failed(exc.ecu_id, exc.code)
            return
        bad = pre.failing(self.preconditions(), pre.WATCHED)
        if bad:
            self._precondition_broken("precondition:" + bad[0]["id"])
            return
        self._fire(Ev.POINT_OF_NO_RETURN, None, history={})

    def _precondition_broken(self, reason: str) -> None:
        failing = pre.failing(self.preconditions(), pre.WATCHED)
        self._fire(
            Ev.PRECONDITION_BROKEN,
            reason,
            history={
                "failing": [{"id": f["id"], "hint": f["hint"]} for f in failing],
                "nothing_changed": True,
            },
        )

    def _set_failed(self, ecu_id: str, code: str) -> None:
        with self._inst_lock:
            cur = self._inst.setdefault(ecu_id, {"phase": "waiting", "percent": 0.0})
            cur.update(phase="failed", error=code)
        self.machine.update(install=self._inst_copy())

    def _step_activate(self) -> None:
        assignments, _ = self._assignments()
        ids = [a.ecu_id for a in assignments]
        res = self.fleet.activate(assignments)
        bad = [i for i in ids if res.get(i) not in (fl.PENDING, fl.TRIAL, fl.CONFIRMED)]
        if bad:
            # An ECU that cannot be activated (or already rejected the image): undo the others.
            self._rollback(assignments, bad[0], f"activate:{res.get(bad[0], 'unreachable')}")
            return
        self.fleet.reboot(assignments)
        self._fire(Ev.REBOOT_SENT, None, history={})

    def _step_restart(self) -> None:
        assignments, _ = self._assignments()
        res = self.fleet.settle(assignments, self.config.policy.restart_timeout_s)
        lost = [i for i, c in res.items() if c == "unreachable"]
        if lost:
            self._needs_service(f"ecu_unreachable:{lost[0]}", assignments)
            return
        self._fire(Ev.ECUS_BACK, None, history={})

    def _step_verify(self) -> None:
        assignments, _ = self._assignments()
        res = self.fleet.settle(assignments, self.config.policy.restart_timeout_s)
        for i, c in res.items():
            if c == fl.TRIAL:
                self._ecu_progress(i, {"phase": "trial", "percent": 100.0})
        failed = [i for i, c in res.items() if c not in (fl.TRIAL, fl.CONFIRMED)]
        if failed:
            why = res[failed[0]]
            rep_ = self.fleet.lines[failed[0]].last_report
            if rep_ is not None and rep_.last_error:
                why = f"{why}:{rep_.last_error}"
            self._rollback(assignments, failed[0], why)
            return
        for _attempt in range(3):
            conf = self.fleet.confirm(assignments)
            if all(conf.get(a.ecu_id) == fl.CONFIRMED for a in assignments):
                self._finish(Ev.VERIFY_OK, None, assignments)
                return
        self._needs_service("confirm_failed", assignments)

    def _rollback(self, assignments: list[EcuAssignment], culprit: str, why: str) -> None:
        self._set_failed(culprit, why)
        self.events.append("rolling_back", {"ecu_id": culprit, "why": why})
        res = self.fleet.revert(assignments)
        # an ECU that refused the REVERT (e.g. e_no_image) will not come back: don't wait for it
        refused = {
            i: c[len(fl.REVERT_REFUSED) :]
            for i, c in res.items()
            if c.startswith(fl.REVERT_REFUSED)
        }
        waiting = [a for a in assignments if a.ecu_id not in refused]
        back = self.fleet.wait_old(waiting, self.config.policy.restart_timeout_s)
        for i, ok in back.items():
            if ok and i != culprit:
                self._ecu_progress(i, {"phase": "reverted", "percent": 100.0})
        reason = f"ecu_failed:{culprit}:{why}"
        stuck = [i for i, ok in back.items() if not ok]
        if not refused and not stuck:
            self._finish(Ev.ROLLED_BACK, reason, assignments)
            return
        for i, code in refused.items():
            self._set_failed(i, code)
        if refused:
            reason += ";revert_refused:" + ",".join(f"{i}:{c}" for i, c in refused.items())
        if stuck:
            reason += ";not_reverted:" + ",".join(stuck)
        self._needs_service(reason, assignments)

    def _needs_service(self, reason: str, assignments: list[EcuAssignment]) -> None:
        self._finish(Ev.NEEDS_SERVICE, reason, assignments)

    def _finish(self, ev: Ev, reason: str | None, assignments: list[EcuAssignment]) -> None:
        ecus: dict[str, Any] = {}
        for a in assignments:
            r = self.fleet.lines[a.ecu_id].last_report
            ecus[a.ecu_id] = {
                "to_version": a.version,
                "running_version": r.active.version if r else None,
                "outcome": self._inst_copy().get(a.ecu_id, {}).get("phase"),
                "last_error": r.last_error if r else None,
            }
        self._save_ecu_cache()
        plan = self._plan()
        finished = list(self.machine.get("finished_plans") or [])
        if plan is not None and plan.plan_id not in finished:
            finished = [*finished, plan.plan_id][-50:]
        nxt = {
            Ev.VERIFY_OK: "succeeded",
            Ev.ROLLED_BACK: "failed_rolled_back",
            Ev.NEEDS_SERVICE: "failed_needs_service",
        }[ev]
        result = {"state": nxt, "reason": reason, "ecus": ecus, "ts": self.clock.now()}
        self._fire(
            ev,
            reason,
            updates={
                "result": result,
                "finished_plans": finished,
                "install": self._inst_copy(),
            },
            history={"result": nxt, "ecus": ecus},
        )

    def _make_report(self, rec: dict[str, Any]) -> None:
        """Sign the vehicle version manifest of a finished campaign and queue it."""
        if self._gateway_key is None:
            self._gateway_key = rep.load_or_create_key(self.config.gateway_key_path)
        entries = []
        for line in self.fleet.lines.values():
            r = line.last_report
            if r is not None:
                entries.append(rep.ecu_entry(line.cfg.ecu_id, r.body, r.sig, True))
            else:
                c = self._ecu_cache.get(line.cfg.ecu_id)
                if c and c.get("body"):
                    entries.append(
                        rep.ecu_entry(
                            line.cfg.ecu_id,
                            bytes.fromhex(c["body"]),
                            bytes.fromhex(c["sig"]),
                            bool(c.get("verified")),
                        )
                    )
        result = rec.get("result") or {"state": rec["state"], "reason": rec.get("reason")}
        manifest = rep.build_manifest(
            self.config.vehicle_id, rec.get("campaign_id"), result, entries, self.clock.now()
        )
        env = rep.sign_manifest(manifest, self._gateway_key)
        self._outbox.enqueue(env, rep.report_name(rec.get("campaign_id"), rec["state"]))
        self.machine.update(report_queued=True)
        self.events.append("report_queued", {"campaign_id": rec.get("campaign_id")})

    # ---- inventory -----------------------------------------------------------------------------
    def _inventory(self) -> None:
        if not self.fleet.lines:
            return
        res = self.fleet.reports(fresh=True)
        for i, r in res.items():
            if isinstance(r, BaseException):
                self.events.append(
                    "ecu_unreachable", {"ecu_id": i, "error": getattr(r, "code", repr(r))}
                )
        self._save_ecu_cache()
        self.events.append("inventory", {"ecus": self.ecus()})

    def _save_ecu_cache(self) -> None:
        for i, line in self.fleet.lines.items():
            r = line.last_report
            if r is None:
                continue
            self._ecu_cache[i] = {
                "version": r.active.version,
                "active_slot": r.active_slot,
                "active_sha256": r.active.sha256.hex(),
                "active_state": r.active.state,
                "boot_state": r.boot_state,
                "last_error": r.last_error,
                "release_floor": r.release_floor,
                "slots": [
                    {"state": s.state, "version": s.version, "release_counter": s.release_counter}
                    for s in r.slots
                ],
                "body": r.body.hex(),
                "sig": r.sig.hex(),
                "verified": True,
                "ts": line.last_report_ts,
            }
        atomic_write_json(self.state_dir / "ecus.json", self._ecu_cache)


def _legal(st: S) -> list[Ev]:
    from otalink.host.campaign.machine import legal_events

    return legal_events(st)
