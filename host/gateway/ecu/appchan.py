"""The latest application-channel events of one ECU (APP with id 0, docs/protocol.md 4.3).

Public interface (stable):
    AppEvent(chan, data, ts, count)       the newest event on one channel, and how many came
    AppEvents(now=time.time)
      .on_message(msg)                    a session subscriber: keeps APP events, ignores the rest
      .latest() -> list[AppEvent]         one per channel, by channel
      .get(chan) -> AppEvent | None

The application defines what its channels mean (boards/examples: the BMS publishes its state of
charge on channel 1); the gateway keeps the bytes as they came, newest per channel, bounded by
the protocol (channels 0..255, data <= 256 bytes). It is live data, not a signed report: kept in
memory only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from otalink.host.gateway.ecu.wire import App, WireMessage


@dataclass(frozen=True)
class AppEvent:
    """The newest event the ECU's application sent on ``chan`` (``ts``: when it came)."""

    chan: int
    data: bytes
    ts: float
    count: int


class AppEvents:
    """Newest APP event per channel of one ECU; fed by the session's reader thread."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._by_chan: dict[int, AppEvent] = {}

    def on_message(self, msg: WireMessage) -> None:
        """Keep an APP event (id 0); anything else is not ours."""
        if not isinstance(msg, App) or msg.id != 0:
            return
        with self._lock:
            old = self._by_chan.get(msg.chan)
            n = 1 if old is None else old.count + 1
            self._by_chan[msg.chan] = AppEvent(msg.chan, bytes(msg.data), self._now(), n)

    def latest(self) -> list[AppEvent]:
        with self._lock:
            return [self._by_chan[c] for c in sorted(self._by_chan)]

    def get(self, chan: int) -> AppEvent | None:
        with self._lock:
            return self._by_chan.get(chan)
