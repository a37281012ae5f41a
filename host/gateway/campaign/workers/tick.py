"""The ticker: everything that happens by itself, every ``TICK_S`` on the injected clock.

The simulated signals are re-stamped (a live feed), the background update check runs every
``check_interval_s``, a download paused for the link resumes once the link allows it again (a
failed server after ``SERVER_RETRY_S``), a running download stops when the link goes, the
scheduler decides (``scheduler.decide``), and queued reports are sent while online.
"""

from __future__ import annotations

import threading

from otalink.host.gateway.campaign import preconditions as pre
from otalink.host.gateway.campaign import scheduler as sch
from otalink.host.gateway.campaign.clock import Clock, iso
from otalink.host.gateway.campaign.connectivity import Connectivity
from otalink.host.gateway.campaign.discovery import Discovery
from otalink.host.gateway.campaign.events import EventLog
from otalink.host.gateway.campaign.machine import Machine
from otalink.host.gateway.campaign.publish import Publisher
from otalink.host.gateway.campaign.table import AUTO_RESUME, CHECK_STATES, Ev, State
from otalink.host.gateway.config import AgentConfig
from otalink.host.gateway.vehicle.signals import SignalSource

TICK_S = 0.2


class Ticker:
    """The periodic worker (``run`` in its own thread)."""

    def __init__(
        self,
        config: AgentConfig,
        machine: Machine,
        discovery: Discovery,
        link: Connectivity,
        signals: SignalSource,
        checklist: pre.Checklist,
        publisher: Publisher,
        halt_download: threading.Event,
        events: EventLog,
        clock: Clock,
    ) -> None:
        self._config = config
        self._machine = machine
        self._discovery = discovery
        self._link = link
        self._signals = signals
        self._checklist = checklist
        self._publisher = publisher
        self._halt_download = halt_download
        self._events = events
        self._clock = clock
        self.wake = threading.Event()

    def run(self, stop: threading.Event) -> None:
        """Tick until ``stop``; a failing tick is an event, never the end of the ticker."""
        while not stop.is_set():
            self._clock.wait(self.wake, TICK_S)
            self.wake.clear()
            if stop.is_set():
                return
            try:
                self.tick()
            except Exception as exc:  # a tick must never kill the agent
                self._events.append("agent_error", {"where": "ticker", "error": repr(exc)})

    def tick(self) -> None:
        """One tick."""
        now = self._clock.now()
        cfg = self._config
        if cfg.simulated_signals and cfg.simulated_live:
            self._signals.refresh()
        st = self._machine.state
        online = self._link.network() != "none"
        interval = cfg.check_interval_s
        due = interval > 0 and now - self._discovery.last_check >= interval
        if due and st in CHECK_STATES and online:
            self._discovery.check_if_idle()
        rec = self._machine.record()
        if rec.state == State.DOWNLOAD_PAUSED and rec.reason in AUTO_RESUME:
            waiting = rec.reason == "server_unreachable" and now < rec.server_retry_at
            if self._link.blocked() is None and not waiting:
                self._machine.try_fire(Ev.CONNECTION_BACK, None, note={})
        if rec.state == State.DOWNLOADING and self._link.blocked() is not None:
            self._halt_download.set()  # the downloader turns this into the right paused reason
        self._schedule(now)
        if online:
            self._publisher.flush()

    def _schedule(self, now: float) -> None:
        with self._machine.lock:
            rec = self._machine.record()
            st, sched = rec.state, rec.schedule
            if sched is None:
                return
            fails: list[str] = []
            if st == State.SCHEDULED:
                fails = [f.id for f in pre.failing(self._checklist())]
            elif st == State.DOWNLOAD_PAUSED and rec.reason:
                fails = [rec.reason]
            d = sch.decide(sched, now, st, fails, self._config.policy)
            if d.event is None:
                return
            if d.event == Ev.SCHEDULE_DUE:
                self._machine.fire(d.event, None, note={"at": iso(sched.at)}, schedule=None)
                return
            reason: str | None = "schedule_missed"
            if d.event != Ev.SCHEDULE_GAVE_UP or st in (State.DOWNLOADING, State.DOWNLOAD_PAUSED):
                reason = rec.reason  # a paused download keeps why it is paused
            retry_at = iso(d.schedule.next_at) if d.schedule else None
            self._machine.fire(
                d.event,
                reason,
                note={
                    "at": iso(sched.at),
                    "missed": True,
                    "reasons": d.reasons,
                    "retry_at": retry_at,
                },
                schedule=d.schedule,
            )
            self._events.append(
                "schedule_missed",
                {
                    "at": iso(sched.at),
                    "reasons": list(d.reasons),
                    "retry_at": retry_at,
                    "gave_up": d.event == Ev.SCHEDULE_GAVE_UP,
                },
            )
