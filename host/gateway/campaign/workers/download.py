"""The downloader: downloads the plan's images while the campaign is ``downloading``.

The update layer resumes every image from the bytes already on disk (HTTP Range) and checks it
against its trusted length and hash. How a failed download leaves the campaign is one function
(``stop_for``): a link problem pauses it (it resumes by itself, keeping every byte), a refused
image or a 4xx makes the update available again without the download.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from otalink.host.gateway.campaign.clock import Clock
from otalink.host.gateway.campaign.connectivity import Connectivity
from otalink.host.gateway.campaign.events import EventLog
from otalink.host.gateway.campaign.machine import Machine
from otalink.host.gateway.campaign.progress import DownloadNumbers, LiveProgress
from otalink.host.gateway.campaign.record import Note
from otalink.host.gateway.campaign.source import UpdateSource
from otalink.host.gateway.campaign.table import Ev, State
from otalink.host.gateway.update import errors as uerr
from otalink.host.gateway.update.types import DownloadProgress

SERVER_RETRY_S = 30.0  # a paused download waits this long for a server that failed
POLL_S = 0.5


@dataclass(frozen=True)
class Stopped:
    """Where a failed download leaves the campaign."""

    ev: Ev
    reason: str
    note: Note
    server_retry: bool = False  # wait SERVER_RETRY_S before resuming by itself
    refused: bool = False  # a trust refusal: event download_refused


def stop_for(exc: uerr.DownloadError | uerr.TrustError) -> Stopped:
    """The campaign's answer to a failed download (most specific error first)."""
    if isinstance(exc, uerr.NeedsPermissionError):
        return Stopped(Ev.METERED_BLOCKED, "cellular_not_allowed", {})
    if isinstance(exc, uerr.ConnectivityError):  # slow retrieval too: bytes are kept
        return Stopped(Ev.CONNECTION_LOST, exc.reason or "no_connection", {})
    if isinstance(exc, uerr.HttpStatusError) and exc.status < 500:
        return Stopped(Ev.DOWNLOAD_FAILED, exc.reason, {"code": exc.code})
    if isinstance(exc, uerr.HttpStatusError):
        return Stopped(Ev.CONNECTION_LOST, "server_unreachable", {}, server_retry=True)
    if isinstance(exc, uerr.TrustError):
        note: Note = {"code": exc.code, "detail": exc.message}
        return Stopped(Ev.DOWNLOAD_FAILED, exc.code, note, refused=True)
    return Stopped(Ev.CONNECTION_LOST, "server_unreachable", {"code": exc.code}, server_retry=True)


class Downloader:
    """The download worker (``run`` in its own thread)."""

    def __init__(
        self,
        machine: Machine,
        source: Callable[[], UpdateSource],
        link: Connectivity,
        live: LiveProgress,
        events: EventLog,
        clock: Clock,
    ) -> None:
        self._machine = machine
        self._source = source
        self._link = link
        self._live = live
        self._events = events
        self._clock = clock
        self.wake = threading.Event()  # look at the state now
        self.halt = threading.Event()  # stop the download in progress
        self.discard = threading.Event()  # delete the downloads once nothing downloads

    def run(self, stop: threading.Event) -> None:
        """Download whenever the campaign is ``downloading``, until ``stop``."""
        while not stop.is_set():
            self._clock.wait(self.wake, POLL_S)
            self.wake.clear()
            if stop.is_set():
                return
            try:
                st = self._machine.state
                if self.discard.is_set() and st not in (State.DOWNLOADING, State.DOWNLOAD_PAUSED):
                    self.discard.clear()
                    self._source().discard(None)  # cancelled / withdrawn update
                if st == State.DOWNLOADING:
                    try:
                        self._once(stop)
                    finally:
                        self._live.downloading = False
            except Exception as exc:
                self._events.append("agent_error", {"where": "downloader", "error": repr(exc)})
                self._paused(Stopped(Ev.CONNECTION_LOST, "server_unreachable", {}, True))

    def _paused(self, why: Stopped) -> None:
        retry = self._clock.now() + SERVER_RETRY_S if why.server_retry else 0.0
        self._machine.try_fire(why.ev, why.reason, note=why.note, server_retry_at=retry)

    def _once(self, stop: threading.Event) -> None:
        rec = self._machine.record()
        plan = rec.plan
        if plan is None:
            self._machine.try_fire(Ev.DOWNLOAD_FAILED, "no_plan")
            return
        if self._link.blocked() is not None:
            self._link.gate()
            return
        net = self._link.network()
        self.halt.clear()
        t0 = self._clock.monotonic()

        def should_stop() -> bool:
            if stop.is_set() or self.halt.is_set():
                return True
            return self._machine.state != State.DOWNLOADING

        self._live.downloading = True
        try:
            paths = self._source().download(
                plan,
                self._progress(rec.campaign_id),
                should_stop,
                network="cellular" if net == "cellular" else "wifi",
                allow_metered=self._link.cellular_allowed(),
            )
        except uerr.DownloadInterrupted:
            self._live.downloading = False
            if not stop.is_set() and self._machine.state == State.DOWNLOADING:
                self._link.gate()
            return
        except (uerr.DownloadError, uerr.TrustError) as exc:
            why = stop_for(exc)
            if why.refused:
                self._events.append("download_refused", {"code": exc.code, "detail": exc.message})
            self._paused(why)
            return
        total = plan.download_size
        self._live.set_download(rec.campaign_id, DownloadNumbers(bytes=total, total=total, eta_s=0))
        took = round(self._clock.monotonic() - t0, 3)
        ev = Ev.DOWNLOAD_DONE_SCHEDULED if self._machine.record().schedule else Ev.DOWNLOAD_DONE
        images = {a.ecu_id: str(paths[plan.delivery(a.ecu_id).target]) for a in plan.assignments}
        self._machine.try_fire(ev, None, note={"seconds": took}, images=images)

    def _progress(self, campaign_id: str | None) -> Callable[[DownloadProgress], None]:
        def progress(p: DownloadProgress) -> None:
            rate = p.rate_bps
            left = max(0, p.overall_total - p.overall_done)
            numbers = DownloadNumbers(
                bytes=p.overall_done,
                total=p.overall_total,
                rate=round(rate, 1),
                eta_s=round(left / rate, 1) if rate > 0 else None,
                target=p.target,
                resumed_from=p.resumed_from,
            )
            self._live.set_download(campaign_id, numbers)
            self._events.append("download_progress", numbers.model_dump(mode="json"), durable=False)

        return progress
