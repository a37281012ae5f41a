"""One ECU line of the vehicle: a lazily (re)opened client, its signed reports and link health.

Public interface (stable):
    FleetError(ecu_id, code, message)     one ECU failed an operation (``code`` stable)
    LineHealth(now=time.time)   .ok .errors .last_error .last_seen .record(success, error=None)
    HEALTH_WINDOW                         the link is "ok" unless each of the last N failed
    ProgressNote, FleetNote               what the fleet tells the campaign (progress, events)
    ClientFactory = Callable[[EcuConfig], EcuClient];  default_client(cfg, timeout, command_key)
    Line(cfg, factory, now=time.time)    ``now``: the campaign's wall clock (report times)
      .client() -> EcuClient      .close()    .lock (one thread at a time)   .health
      .report(fresh_session=False, timeout=None, nonce=None) -> EcuInfo   a signed report
      .hello_until(deadline) -> EcuInfo    short HELLO polls until the ECU answers (reboots)
      .restarted()                the ECU restarts: the next report opens a new session
      .last_report / .last_report_ts
      .app_events: AppEvents      the application's newest event per channel (APP id 0)
      .listen(seconds) -> int     read the line for events while nobody else uses it
      .idle(seconds, check)       (holding ``lock``) free the line for ``seconds``, ``check()``
                                  every IDLE_STEP_S (it raises to stop the wait)
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Required, TypedDict

from otalink.host.errors import OtalinkError
from otalink.host.gateway.config import EcuConfig
from otalink.host.gateway.ecu.appchan import AppEvents
from otalink.host.gateway.ecu.client import EcuClient
from otalink.host.gateway.ecu.errors import EcuError, EcuLinkError, EcuProtocolError
from otalink.host.gateway.ecu.info import EcuInfo
from otalink.protocol import codes

HEALTH_WINDOW = 3  # link is "ok" unless each of the last N requests failed (or none yet)
HELLO_FIRST_S = 0.5  # first reply wait of a post-reboot HELLO poll (doubles per silent try)
HELLO_GAP_S = 0.1  # pause between HELLO polls
IDLE_STEP_S = 0.1  # idle(): how often the waiting caller checks whether it must stop


class FleetError(OtalinkError):
    """One ECU failed an operation; ``code`` is stable: the ECU client error's
    (``ecu_rejected.e_sig_invalid``, ``ecu_link.e_timeout``, ...) or ``fleet.*``."""

    def __init__(self, ecu_id: str, code: str, message: str) -> None:
        super().__init__(f"{ecu_id}: {message}", code=code)
        self.ecu_id = ecu_id


class ProgressNote(TypedDict, total=False):
    """One ECU's step of an install (``on_progress``): its phase, percent and, while it
    transfers, the offset the device holds."""

    phase: Required[str]
    percent: Required[float]
    offset: int
    reason: str  # phase "deferred": the application's reason


# What a fleet event (``log``) tells, beside its type: the ECU and the facts of that step.
FleetNote = TypedDict(
    "FleetNote",
    {
        "ecu_id": Required[str],
        "found": str,
        "from": str,
        "offset": int,
        "total": int,
        "resumed_from": int,
        "wire_bytes": int,
        "sent_bytes": int,
        "seconds": float,
        "code": str,
        "error": str,
        "reason": str,
    },
    total=False,
)


@dataclass
class LineHealth:
    """Link health of one ECU line (for ``Agent.ecus()``).

    ``ok`` reflects a short history, not only the last request: it is True once a request
    succeeded and turns False only when each of the last ``HEALTH_WINDOW`` requests failed, so
    one timeout under load does not flag the line. ``errors`` counts every failure.
    ``now`` is the campaign's wall clock (``last_seen``).
    """

    now: Callable[[], float] = time.time
    last_seen: float | None = None
    last_error: str | None = None
    errors: int = 0
    recent: deque[bool] = field(default_factory=lambda: deque(maxlen=HEALTH_WINDOW))

    @property
    def ok(self) -> bool:
        return any(self.recent)

    def record(self, success: bool, error: str | None = None) -> None:
        """Note the outcome of one request."""
        self.recent.append(success)
        if success:
            self.last_seen = self.now()
            self.last_error = None
        else:
            self.errors += 1
            self.last_error = error


ClientFactory = Callable[[EcuConfig], EcuClient]


def default_client(
    cfg: EcuConfig,
    timeout: float = codes.T_REPLY_MS / 1000,
    command_key: bytes | None = None,
) -> EcuClient:
    """An EcuClient on the ECU's serial URL that checks reports with its registered key and
    signs commands with ``command_key`` (the gateway's command key seed)."""
    return EcuClient(
        cfg.port,
        baud=cfg.baud,
        timeout=timeout,
        verify_key=cfg.public_key,
        recover_timeout=20.0,
        command_key=command_key,
    )


class Line:
    """One ECU line: a lazily (re)opened client used by one thread at a time."""

    def __init__(
        self, cfg: EcuConfig, factory: ClientFactory, now: Callable[[], float] = time.time
    ) -> None:
        self.cfg = cfg
        self._factory = factory
        self._now = now
        self._client: EcuClient | None = None
        self.lock = threading.Lock()
        self.health = LineHealth(now)
        self.last_report: EcuInfo | None = None
        self.last_report_ts: float | None = None
        self.app_events = AppEvents(now)

    def client(self) -> EcuClient:
        if self._client is None:
            self._client = self._factory(self.cfg)
            self._client.subscribe(self.app_events.on_message, (codes.MSG_APP,))
        return self._client

    def listen(self, seconds: float) -> int:
        """Read the line for ``seconds`` for the application's events, only when it is open and
        nobody else holds it (a request or a transfer reads the events on its way); the number
        of events delivered."""
        if self._client is None or not self.lock.acquire(blocking=False):
            return 0
        try:
            return self._client.session.pump(seconds)
        except (EcuError, OSError):
            return 0  # the line's next request finds out (and records it in the health)
        finally:
            self.lock.release()

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            finally:
                self._client = None

    def restarted(self) -> None:
        """The ECU restarts (REBOOT, REVERT): the next report opens a new session."""
        if self._client is not None:
            self._client.forget_session()

    def report(
        self, fresh_session: bool = False, timeout: float | None = None, nonce: bytes | None = None
    ) -> EcuInfo:
        """A signed report for a fresh nonce (HELLO on a new session, else STATUS_REQ).

        ``timeout`` (if given) caps the client's per-try reply wait for this one request;
        ``nonce``: HELLO's (a poll repeats it, so a late INFO still answers), default fresh."""
        cl = self.client()
        wait = None if timeout is None else min(cl.timeout, timeout)
        try:
            if fresh_session or cl.info is None:
                info = cl.hello(nonce or os.urandom(16), timeout=wait)
            else:
                try:
                    info = cl.status(os.urandom(16), timeout=wait)
                except (EcuLinkError, EcuProtocolError):
                    info = cl.hello(os.urandom(16), timeout=wait)
        except EcuError as exc:
            self.health.record(False, exc.code)
            raise
        if info.ecu_id != self.cfg.ecu_id or info.hw_id != self.cfg.hardware_id:
            raise FleetError(
                self.cfg.ecu_id, "fleet.ecu_identity", f"line answers as {info.ecu_id}"
            )
        info.verify(self.cfg.public_key)  # EcuClient does too; the campaign relies on it
        self.health.record(True)
        self.last_report = info
        self.last_report_ts = self._now()
        return info

    def idle(self, seconds: float, check: Callable[[], None]) -> None:
        """The caller holds ``lock`` and has nothing to do for ``seconds`` (an application
        deferred the update): the line is free meanwhile (the listener reads the application's
        events, a request of another thread gets through); ``check()`` runs every
        ``IDLE_STEP_S`` and may raise to end the wait. ``lock`` is held again on return."""
        end = time.monotonic() + seconds
        self.lock.release()
        try:
            while (left := end - time.monotonic()) > 0:
                check()
                time.sleep(min(IDLE_STEP_S, left))
        finally:
            self.lock.acquire()

    def hello_until(self, deadline: float) -> EcuInfo:
        """A fresh-session report, polled with short HELLO tries until ``deadline`` (monotonic).

        A HELLO sent while the ECU reboots is lost; rather than one full ECU timeout (times
        the client's tries), try with a short reply wait that doubles after each silent attempt
        (up to the client's own timeout), never waiting past ``deadline``. Raises the last
        EcuLinkError when the deadline passes."""
        wait = HELLO_FIRST_S
        nonce = os.urandom(16)  # one for the whole poll: an INFO signed late still counts
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise EcuLinkError(f"{self.cfg.ecu_id}: no HELLO answer before the deadline")
            # keep all the tries of one request inside the deadline
            tries = self.client().session.policy.tries
            try:
                return self.report(True, max(0.05, min(wait, left / tries)), nonce)
            except EcuLinkError:
                if time.monotonic() >= deadline:
                    raise
                wait = min(wait * 2, self.client().timeout)
                time.sleep(min(HELLO_GAP_S, max(0.0, deadline - time.monotonic())))
