"""Live progress the record does not persist: the download's bytes and rate, each ECU's percent.

The record keeps each ECU's install phase (written when a phase changes); the numbers in between
change many times a second and are not worth an fsync. Both are kept per campaign id, so a new
campaign (or a cancelled download, which starts one) never shows the last one's numbers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

from otalink.host.gateway.campaign.events import EventLog
from otalink.host.gateway.campaign.machine import Machine
from otalink.host.gateway.campaign.record import DELIVERY_FIELDS, EcuProgress, Phase
from pydantic import BaseModel, ConfigDict

# overall install percent: the transfer counts for 80 %, the steps after it for the rest
TRANSFER_SHARE = 0.8
PHASE_WEIGHT: dict[Phase, float] = {
    Phase.WAITING: 0.0,
    Phase.VERIFIED: 80.0,
    Phase.ACTIVATED: 85.0,
    Phase.RESTARTING: 90.0,
    Phase.TRIAL: 95.0,
    Phase.CONFIRMED: 100.0,
    Phase.REVERTED: 100.0,
    Phase.UP_TO_DATE: 100.0,
}


class DownloadNumbers(BaseModel):
    """The download's numbers (``status().download`` without ``active``/``percent``)."""

    model_config = ConfigDict(frozen=True)

    bytes: int = 0
    total: int = 0
    rate: float = 0.0
    eta_s: float | None = None
    target: str | None = None
    resumed_from: int | None = None


def ecu_percent(p: EcuProgress) -> float:
    """One ECU's share of the overall percent."""
    if p.phase == Phase.TRANSFERRING:
        return TRANSFER_SHARE * p.percent
    if p.phase == Phase.FAILED:
        return p.percent
    return PHASE_WEIGHT.get(p.phase, 0.0)


def overall_percent(ecus: Mapping[str, EcuProgress]) -> float | None:
    """The install's overall percent (None before any ECU is in it)."""
    vals = [ecu_percent(p) for p in ecus.values()]
    return round(sum(vals) / len(vals), 1) if vals else None


class LiveProgress:
    """Thread-safe live numbers of one campaign at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._campaign: str | None = None
        self._download: DownloadNumbers | None = None
        self._ecus: dict[str, EcuProgress] = {}
        self.downloading = False  # the downloader is inside a download right now

    def _for(self, campaign_id: str | None) -> None:
        if campaign_id != self._campaign:
            self._campaign = campaign_id
            self._download = None
            self._ecus = {}

    def download(self, campaign_id: str | None) -> DownloadNumbers | None:
        """The download numbers of ``campaign_id`` (None if it has none yet)."""
        with self._lock:
            return self._download if campaign_id == self._campaign else None

    def set_download(self, campaign_id: str | None, numbers: DownloadNumbers) -> None:
        with self._lock:
            self._for(campaign_id)
            self._download = numbers

    def ecus(self, campaign_id: str | None) -> dict[str, EcuProgress]:
        """Each ECU's latest progress in ``campaign_id``."""
        with self._lock:
            return dict(self._ecus) if campaign_id == self._campaign else {}

    def set_ecu(self, campaign_id: str | None, ecu_id: str, progress: EcuProgress) -> None:
        with self._lock:
            self._for(campaign_id)
            self._ecus[ecu_id] = progress


class InstallTracker:
    """Each ECU's install progress: live numbers for the screen, the phase into the record.

    The fleet reports through ``on_progress`` (from its per-ECU threads); a phase change is
    persisted (and its event is durable), a percent step only updates the live numbers.
    """

    def __init__(self, machine: Machine, live: LiveProgress, events: EventLog) -> None:
        self._machine = machine
        self._live = live
        self._events = events
        self._lock = threading.Lock()

    def ecus(self) -> dict[str, EcuProgress]:
        """Each ECU's progress in the current campaign (the record's, with the live numbers)."""
        rec = self._machine.record()
        live = self._live.ecus(rec.campaign_id)
        return {i: live.get(i, p) for i, p in rec.install.items()}

    def _set(
        self, ecu_id: str, change: Mapping[str, object], persist: bool = False
    ) -> tuple[EcuProgress, bool]:
        with self._lock:
            rec = self._machine.record()
            cur = self.ecus().get(ecu_id, EcuProgress())
            new = EcuProgress.model_validate(cur.model_dump() | dict(change))
            if new.phase != cur.phase and "reason" not in change:
                new = new.model_copy(update={"reason": None})  # a deferral's reason ends with it
            self._live.set_ecu(rec.campaign_id, ecu_id, new)
            changed = new.phase != cur.phase or ecu_id not in rec.install
            if changed or persist:
                self._machine.update(install={**rec.install, **self.ecus(), ecu_id: new})
            return new, changed

    def on_progress(self, ecu_id: str, data: Mapping[str, object]) -> None:
        """The fleet's progress callback: ``{phase, percent[, offset]}`` of one ECU; what it is
        sent (``DELIVERY_FIELDS``: a patch, a fallback to the full image, its wire bytes) is
        persisted at once, as a phase change is (the final report repeats it)."""
        new, changed = self._set(ecu_id, data, persist=not DELIVERY_FIELDS.isdisjoint(data))
        shown = new.model_dump(mode="json", include=set(data))
        self._events.append(
            "install_progress",
            {"ecu_id": ecu_id, **shown, "overall_percent": overall_percent(self.ecus())},
            durable=changed,
        )

    def start(self, ecu_ids: Iterable[str]) -> None:
        """Every ECU of the install shows from the start (``waiting`` until it moves)."""
        with self._lock:
            rec = self._machine.record()
            new = {i: EcuProgress() for i in ecu_ids if i not in rec.install}
            if new:
                self._machine.update(install={**rec.install, **new})

    def failed(self, ecu_id: str, code: str) -> None:
        """``ecu_id`` failed (``code`` says why); persisted."""
        self._set(ecu_id, {"phase": Phase.FAILED, "error": code}, persist=True)
