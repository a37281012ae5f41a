"""The view model: what the screen, the CLI and the local API show, as typed (pydantic) models.

The local API answers with these models (FastAPI ``response_model``: the committed OpenAPI file's
response schemas come from them), the screen reads that JSON, and the CLI parses it back into
the same models for its text and prints it for ``--json``. ``View`` builds them from the record,
the live progress, the inventory and the signals; it changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from otalink.host.gateway.campaign import preconditions as pre
from otalink.host.gateway.campaign.clock import iso
from otalink.host.gateway.campaign.connectivity import Connectivity
from otalink.host.gateway.campaign.discovery import plan_version
from otalink.host.gateway.campaign.events import EventLog
from otalink.host.gateway.campaign.inventory import (
    AppRecord,
    BootStateValue,
    Inventory,
    LinkHealth,
    SlotRecord,
)
from otalink.host.gateway.campaign.machine import Machine
from otalink.host.gateway.campaign.progress import (
    DownloadNumbers,
    InstallTracker,
    LiveProgress,
    overall_percent,
)
from otalink.host.gateway.campaign.record import (
    CampaignRecord,
    CampaignResult,
    EcuProgress,
    HistoryEntry,
    Miss,
)
from otalink.host.gateway.campaign.table import PONR_STATES, Ev, State, legal_events
from otalink.host.gateway.config import EcuConfig
from otalink.host.gateway.update.types import UpdatePlan
from otalink.host.gateway.vehicle.signals import SignalSource
from pydantic import BaseModel, ConfigDict

Network = pre.Network


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class UpdateSummary(_View):
    """The available update at a glance (the notification)."""

    plan_id: str
    version: str
    title: str
    download_size: int
    est_install_s: int


class DownloadView(DownloadNumbers):
    """The download's progress; ``active`` while the downloader is inside a download."""

    active: bool = False
    percent: float | None = None


class InstallView(_View):
    """Each ECU's install phase and percent, and the overall percent."""

    ecus: dict[str, EcuProgress]
    overall_percent: float | None
    point_of_no_return: bool


class ScheduleView(_View):
    """The scheduled install: when (ISO 8601 and unix seconds), the next try, the misses."""

    at: str
    at_ts: float
    next_at: str
    attempts: int
    misses: list[Miss]


class NoSchedule(_View):
    """Nothing is scheduled (``GET /schedule``)."""

    at: None = None


class Status(_View):
    """Everything the screen shows at a glance (``GET /status``; every command answers it)."""

    state: State
    reason: str | None
    since: float
    campaign_id: str | None
    update: UpdateSummary | None
    download: DownloadView
    install: InstallView
    point_of_no_return: bool
    schedule: ScheduleView | None
    network: Network
    cellular_allowed: bool
    result: CampaignResult | None
    last_event_id: int
    legal: list[Ev]


class NetworkPolicy(_View):
    """Which link the download may use now."""

    network: Network
    cellular_allowed: bool
    cellular_needs_permission: bool = True


class EcuChange(_View):
    """One ECU's part of the update."""

    ecu_id: str
    hardware_id: str
    from_version: str | None
    to_version: str
    target: str
    size: int  # the image's length
    title: str
    # what is really downloaded and sent (issue 13): a patch ("12 kB, delta from 2.0.0") or the
    # full image, its length, and why not a patch (``delta.*``) when one was bound
    delivery: str = ""
    delivery_size: int = 0
    delta_from: str | None = None
    delivery_reason: str | None = None


class UpdateDetails(_View):
    """The details screen (``GET /update``)."""

    plan_id: str
    version: str
    title: str
    release_notes: str
    download_size: int
    est_install_s: int
    unavailable_functions: list[str]
    network_policy: NetworkPolicy
    ecus: list[EcuChange]


class EcuView(_View):
    """One configured ECU: versions from its last signed report, link health, install phase."""

    ecu_id: str
    hardware_id: str
    port: str
    version: str | None = None
    slots: list[SlotRecord] | None = None
    active_slot: int | None = None
    boot_state: BootStateValue | None = None
    last_error: int | None = None
    release_floor: int | None = None
    report_ts: float | None = None
    report_verified: bool = False
    agent_version: str | None = None  # the ECU's update agent (its signed report)
    link: LinkHealth
    install: EcuProgress | None = None
    app: list[AppRecord] = []  # the application's newest event per channel (live, unsigned)


class SignalReading(_View):
    """A vehicle signal's value, when it was set, and whether it is too old to count."""

    value: bool | int | float | str | None
    ts: float | None
    age_s: float | None
    stale: bool


class Signals(_View):
    """Every known VSS signal (``GET/PUT /signals``)."""

    signals: dict[str, SignalReading]


class View:
    """Builds the view models (reads only)."""

    def __init__(
        self,
        ecus: Sequence[EcuConfig],
        machine: Machine,
        events: EventLog,
        signals: SignalSource,
        link: Connectivity,
        inventory: Inventory,
        live: LiveProgress,
        tracker: InstallTracker,
        checklist: pre.Checklist,
    ) -> None:
        self._ecus = tuple(ecus)
        self._machine = machine
        self._events = events
        self._signals = signals
        self._link = link
        self._inventory = inventory
        self._live = live
        self._tracker = tracker
        self._checklist = checklist

    def status(self) -> Status:
        """The status now."""
        rec = self._machine.record()
        ponr = rec.state in PONR_STATES
        ecus = self._tracker.ecus()
        return Status(
            state=rec.state,
            reason=rec.reason,
            since=rec.since,
            campaign_id=rec.campaign_id,
            update=summary(rec.plan),
            download=self._download(rec),
            install=InstallView(
                ecus=ecus, overall_percent=overall_percent(ecus), point_of_no_return=ponr
            ),
            point_of_no_return=ponr,
            schedule=_schedule(rec),
            network=self._link.network(),
            cellular_allowed=self._link.cellular_allowed(),
            result=rec.result,
            last_event_id=self._events.last_id,
            legal=legal_events(rec.state),
        )

    def _download(self, rec: CampaignRecord) -> DownloadView:
        numbers = self._live.download(rec.campaign_id)
        if numbers is None:
            total = rec.plan.download_size if rec.plan is not None else 0
            numbers = DownloadNumbers(total=total)
        pct = round(100.0 * numbers.bytes / numbers.total, 1) if numbers.total else None
        return DownloadView(**numbers.model_dump(), active=self._live.downloading, percent=pct)

    def schedule(self) -> ScheduleView | NoSchedule:
        """The scheduled install, if any."""
        return _schedule(self._machine.record()) or NoSchedule()

    def update_details(self) -> UpdateDetails | None:
        """The available update, as the details screen shows it (None if there is none)."""
        plan = self._machine.record().plan
        if plan is None:
            return None
        changes = []
        for a in plan.assignments:
            img = plan.images.get(a.target)
            cur = self._inventory.get(a.ecu_id)
            changes.append(
                EcuChange(
                    ecu_id=a.ecu_id,
                    hardware_id=a.hw_id,
                    from_version=cur.version if cur else None,
                    to_version=a.version,
                    target=a.target,
                    size=a.length,
                    title=img.title if img else a.target,
                    delivery=(d := plan.delivery(a.ecu_id)).label,
                    delivery_size=d.download_length,
                    delta_from=d.base_version,
                    delivery_reason=d.reason or None,
                )
            )
        return UpdateDetails(
            plan_id=plan.plan_id,
            version=plan_version(plan),
            title=plan.title,
            release_notes=plan.release_notes,
            download_size=plan.download_size,
            est_install_s=plan.est_install_s,
            unavailable_functions=list(plan.unavailable_functions),
            network_policy=NetworkPolicy(
                network=self._link.network(), cellular_allowed=self._link.cellular_allowed()
            ),
            ecus=changes,
        )

    def preconditions(self) -> list[pre.Precondition]:
        """The install checklist, evaluated now."""
        return self._checklist()

    def history(self) -> list[HistoryEntry]:
        """Past transitions worth telling the driver (oldest first)."""
        return list(self._machine.record().history)

    def ecus(self) -> list[EcuView]:
        """Each configured ECU: versions from its last signed report, link health, and its
        application's newest events."""
        phases = self._tracker.ecus()
        out = []
        for e in self._ecus:
            r = self._inventory.get(e.ecu_id)
            report = {} if r is None else {
                "version": r.version, "slots": list(r.slots), "active_slot": r.active_slot,
                "boot_state": r.boot_state, "last_error": r.last_error,
                "release_floor": r.release_floor, "report_ts": r.ts, "report_verified": r.verified,
                "agent_version": r.agent_version or None,
            }  # fmt: skip
            out.append(
                EcuView.model_validate(
                    {
                        "ecu_id": e.ecu_id,
                        "hardware_id": e.hardware_id,
                        "port": e.port,
                        "link": self._inventory.health(e.ecu_id),
                        "install": phases.get(e.ecu_id),
                        "app": self._inventory.app(e.ecu_id),
                        **report,
                    }
                )
            )
        return out

    def signals(self) -> Signals:
        """Every known vehicle signal now."""
        return Signals.model_validate({"signals": self._signals.snapshot()})


def summary(plan: UpdatePlan | None) -> UpdateSummary | None:
    """The notification's summary of ``plan``."""
    if plan is None:
        return None
    return UpdateSummary(
        plan_id=plan.plan_id,
        version=plan_version(plan),
        title=plan.title,
        download_size=plan.download_size,
        est_install_s=plan.est_install_s,
    )


def _schedule(rec: CampaignRecord) -> ScheduleView | None:
    s = rec.schedule
    if s is None:
        return None
    return ScheduleView(
        at=iso(s.at) or "",
        at_ts=s.at,
        next_at=iso(s.next_at) or "",
        attempts=s.attempts,
        misses=list(s.misses),
    )
