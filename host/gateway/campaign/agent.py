"""The host agent: builds the campaign's rooms, runs their workers, dispatches the table's actions.

Public interface (stable; the local API, the CLI's daemon and the demo build on it):

    Agent(config: AgentConfig, *, clock=None, source=None, client_factory=None)
    start() / stop()          the workers: ticker, downloader, installer, the ECU event
                              listener (each its own thread)
    commands: Commands        the driver's commands (check, download_*, allow_cellular, install,
                              schedule, unschedule, cancel, acknowledge, refresh_ecus)
    view: View                the view models (status, update_details, preconditions, history,
                              ecus, schedule, signals)
    events: EventLog          append-only, ids increase; subscribe(since_id)
    signals: SignalSource     set(path, value), get(path), snapshot()

Rooms: ``machine`` (the record + the transition table), ``discovery`` (the update check),
``downloader`` / ``installer`` / ``ticker`` (the workers), ``inventory`` (the ECUs' signed
reports), ``publisher`` (vehicle reports), ``tracker`` / ``live`` (install and download
progress). Each action of the transition table has its handler in ``HANDLERS`` (a missing one
fails at import). ``source``/``client_factory`` are optional injections (tests, tools); by
default the update layer's ``UpdateClient`` and one ``EcuClient`` per configured serial URL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from otalink.host.gateway.campaign import preconditions as pre
from otalink.host.gateway.campaign.clock import Clock, SystemClock
from otalink.host.gateway.campaign.commands import Commands
from otalink.host.gateway.campaign.connectivity import Connectivity
from otalink.host.gateway.campaign.delivery import full_fetcher
from otalink.host.gateway.campaign.discovery import Discovery
from otalink.host.gateway.campaign.events import EventLog
from otalink.host.gateway.campaign.inventory import Inventory
from otalink.host.gateway.campaign.machine import Fired, Machine
from otalink.host.gateway.campaign.progress import InstallTracker, LiveProgress
from otalink.host.gateway.campaign.publish import Publisher
from otalink.host.gateway.campaign.source import UpdateSource, update_config
from otalink.host.gateway.campaign.table import PONR_STATES, TERMINAL, Action
from otalink.host.gateway.campaign.view import View, summary
from otalink.host.gateway.campaign.workers.download import Downloader
from otalink.host.gateway.campaign.workers.install import Installer
from otalink.host.gateway.campaign.workers.listen import Listener
from otalink.host.gateway.campaign.workers.tick import Ticker
from otalink.host.gateway.config import AgentConfig
from otalink.host.gateway.ecu import fleet as fl
from otalink.host.gateway.vehicle.signals import PARKED_DEFAULTS, SignalSource
from pydantic import JsonValue

ECU_TIMEOUT_CAP_S = 5.0  # one ECU request (the first DATA after BEGIN waits longer by itself)


class Agent:
    """The campaign of one vehicle gateway: its rooms and their worker threads."""

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
        state_dir = config.state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        now = self.clock.now
        self.events = EventLog(state_dir / "events.jsonl", now)
        self.signals = SignalSource(
            now,
            config.policy.signal_max_age_s,
            initial=PARKED_DEFAULTS if config.simulated_signals else None,
        )
        self.machine = Machine(state_dir / "campaign.json", now, self._on_transition)
        self.live = LiveProgress()
        self.tracker = InstallTracker(self.machine, self.live, self.events)
        self.fleet = fl.Fleet(
            config.ecus,
            client_factory or self._client_factory(),
            on_progress=self.tracker.on_progress,
            log=self._fleet_log,
            now=now,
            monotonic=self.clock.monotonic,
            defer_max_s=config.policy.defer_max_s,
        )
        self.inventory = Inventory(state_dir / "ecus.json", self.fleet)
        self.link = Connectivity(self.signals, self.machine, config.policy.cellular_allowed)
        self.publisher = Publisher(config, self.machine, self.inventory, self.events, self.clock)
        self._source = source
        self.discovery = Discovery(
            self.machine, self.source, self.inventory, self.link, self.events, self.clock
        )
        self.downloader = Downloader(
            self.machine, self.source, self.link, self.live, self.events, self.clock
        )
        self.installer = Installer(
            config.policy,
            self.machine,
            self.fleet,
            self.inventory,
            self.tracker,
            self.checklist,
            self.take_inventory,
            self.events,
            self.clock,
            full_fetcher(self.source, self.link, lambda: self.machine.record().plan),
        )
        self.ticker = Ticker(
            config,
            self.machine,
            self.discovery,
            self.link,
            self.signals,
            self.checklist,
            self.publisher,
            self.downloader.halt,
            self.events,
            self.clock,
        )
        self.view = View(
            config.ecus,
            self.machine,
            self.events,
            self.signals,
            self.link,
            self.inventory,
            self.live,
            self.tracker,
            self.checklist,
        )
        self.commands = Commands(
            self.machine,
            self.discovery,
            self.link,
            self.checklist,
            self.take_inventory,
            self.events,
            self.clock,
            self.ticker.wake.set,
        )
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _client_factory(self) -> fl.ClientFactory:
        """One EcuClient per ECU line, signing commands with the gateway's command key."""
        seed = self.config.command_seed()  # ConfigError if unreadable
        timeout = min(self.config.policy.ecu_timeout_s, ECU_TIMEOUT_CAP_S)
        return lambda e: fl.default_client(e, timeout=timeout, command_key=seed)

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the workers (resuming whatever the persisted state says)."""
        if self._threads:
            return
        self._stop.clear()
        rec = self.machine.record()
        self.events.append("agent_started", {"state": rec.state.value})
        if rec.state in TERMINAL and not rec.report_queued:
            self.publisher.queue(rec)
        workers: tuple[tuple[str, Callable[[threading.Event], None]], ...] = (
            ("otalink-ticker", self.ticker.run),
            ("otalink-downloader", self.downloader.run),
            ("otalink-installer", self.installer.run),
            ("otalink-listener", Listener(self.fleet).run),
        )
        for name, run in workers:
            t = threading.Thread(target=run, args=(self._stop,), name=name, daemon=True)
            self._threads.append(t)
            t.start()
        self.downloader.wake.set()
        self.installer.wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the workers; persisted state is left as is (a restart resumes it)."""
        self._stop.set()
        self.downloader.halt.set()
        for ev in (self.downloader.wake, self.installer.wake, self.ticker.wake):
            ev.set()
        for t in self._threads:
            t.join(timeout)
        self._threads = []
        self.fleet.close()

    def running(self) -> bool:
        """True while every worker thread is alive."""
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    def __enter__(self) -> Agent:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- shared by the rooms --------------------------------------------------------------------
    def source(self) -> UpdateSource:
        """The update layer (built on first use from the configuration)."""
        if self._source is None:
            from otalink.host.gateway.update.client import UpdateClient

            floors = self.inventory.release_floors()
            self._source = UpdateClient(update_config(self.config, floors))
        return self._source

    def checklist(self) -> list[pre.Precondition]:
        """The install preconditions, evaluated now."""
        return pre.evaluate(self.signals, self.config.policy)

    def take_inventory(self) -> None:
        """Fresh signed reports from every ECU into the inventory (events say who answered)."""
        if not self.fleet.lines:
            return
        for ecu_id, code in self.inventory.refresh().items():
            self.events.append("ecu_unreachable", {"ecu_id": ecu_id, "error": code})
        ecus: list[JsonValue] = [e.model_dump(mode="json") for e in self.view.ecus()]
        self.events.append("inventory", {"ecus": ecus})

    def _fleet_log(self, type_: str, data: Mapping[str, Any]) -> None:
        """The fleet's events (``ecu_transfer_start``, ``ecu_activate`` ...) into the log."""
        self.events.append(type_, data)

    def _on_transition(self, fired: Fired) -> None:
        rec = fired.record
        self.events.append(
            "state",
            {
                "state": rec.state.value,
                "from": fired.prev.value,
                "event": fired.ev.value,
                "reason": rec.reason,
                "point_of_no_return": rec.state in PONR_STATES,
            },
        )
        for action in fired.transition.actions:
            HANDLERS[action](self, fired)


# ---- the table's actions ------------------------------------------------------------------------


def _announce(agent: Agent, fired: Fired) -> None:
    s = summary(fired.record.plan)
    agent.events.append("update_available", s.model_dump(mode="json") if s else {})


def _wake_downloader(agent: Agent, fired: Fired) -> None:
    agent.downloader.halt.clear()
    agent.downloader.wake.set()


def _stop_downloader(agent: Agent, fired: Fired) -> None:
    agent.downloader.halt.set()


def _discard_download(agent: Agent, fired: Fired) -> None:
    agent.downloader.discard.set()
    agent.downloader.wake.set()


def _prompt_confirm(agent: Agent, fired: Fired) -> None:
    items: list[JsonValue] = [p.model_dump(mode="json") for p in agent.checklist()]
    agent.events.append("confirmation_required", {"preconditions": items})


def _wake_ticker(agent: Agent, fired: Fired) -> None:
    agent.ticker.wake.set()


def _wake_installer(agent: Agent, fired: Fired) -> None:
    agent.installer.wake.set()


def _report(agent: Agent, fired: Fired) -> None:
    agent.publisher.queue(fired.record)


HANDLERS: dict[Action, Callable[[Agent, Fired], None]] = {
    Action.ANNOUNCE: _announce,
    Action.WAKE_DOWNLOADER: _wake_downloader,
    Action.STOP_DOWNLOADER: _stop_downloader,
    Action.DISCARD_DOWNLOAD: _discard_download,
    Action.PROMPT_CONFIRM: _prompt_confirm,
    Action.WAKE_TICKER: _wake_ticker,
    Action.WAKE_INSTALLER: _wake_installer,
    Action.ABORT_ECUS: _wake_installer,  # the installer's transfer stops and sends ABORT
    Action.REPORT: _report,
}
if set(HANDLERS) != set(Action):
    raise TypeError(f"table actions without a handler: {sorted(set(Action) - set(HANDLERS))}")
