"""Injectable clock: the campaign never calls ``time`` directly, so tests can move time by hand.

``now`` is wall time (schedules, reports, records), ``monotonic`` measures durations and rate
limits, ``wait`` is every pause of a worker (woken early by its event).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Protocol


def iso(ts: float | None) -> str | None:
    """Unix seconds as ISO 8601 (UTC), or None."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


class Clock(Protocol):
    """Wall time (unix seconds) plus an interruptible wait."""

    def now(self) -> float:
        """Current wall-clock time, unix seconds."""
        ...

    def monotonic(self) -> float:
        """Seconds that never go back (durations, rate limits)."""
        ...

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Wait for ``event`` at most ``timeout`` clock seconds; True if it was set."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return event.wait(max(0.0, timeout))


class ManualClock:
    """A clock that only moves when ``advance``/``set`` is called (tests).

    ``wait`` returns as soon as the event is set or the clock has been advanced past the deadline;
    it polls in short real-time steps so worker threads stay responsive.
    """

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._t = start
        self._cond = threading.Condition()

    def now(self) -> float:
        with self._cond:
            return self._t

    def monotonic(self) -> float:
        return self.now()

    def set(self, t: float) -> None:
        with self._cond:
            self._t = t
            self._cond.notify_all()

    def advance(self, seconds: float) -> None:
        with self._cond:
            self._t += seconds
            self._cond.notify_all()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        with self._cond:
            deadline = self._t + timeout
            while not event.is_set() and self._t < deadline:
                self._cond.wait(0.01)
        return event.is_set()
