"""The one retry policy of the host: how many tries, and how long to wait between them.

Downloads and metadata fetches (``gateway.update``: ``DownloadPolicy.retry``), the ECU lines
(``gateway.ecu``) and the report outbox (``gateway.campaign.reports``) all wait with it:
exponential backoff ``base_s * 2**(n-1)`` capped at ``cap_s``, with full jitter (a uniform draw
below that bound, so a fleet of cars coming back after an outage does not retry in step).

The loop itself stays with each caller, because what runs between two tries is theirs (resume
from the partial file's offset, ``should_stop``, the metered-link check, a fresh HELLO): see
docs/adr/0008-hand-written-code-kept.md. Waits go through an injected :class:`Clock`, so tests
check them without sleeping.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final, Protocol


class Clock(Protocol):
    """Monotonic time and a blocking sleep (the real one, or a test's fake)."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block ``seconds``."""
        ...


class MonotonicClock:
    """The real clock: ``time.monotonic`` and ``time.sleep``."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_CLOCK: Final = MonotonicClock()
#: How often an interruptible wait asks ``should_stop`` (seconds).
STOP_POLL_S: Final = 0.05


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries at most; before try n+1 wait ``delay(n)`` (n failures so far)."""

    attempts: int = 3
    base_s: float = 0.5
    cap_s: float = 30.0
    jitter: bool = True  # full jitter: uniform(0, bound); False waits the bound itself

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.base_s < 0 or self.cap_s < 0:
            raise ValueError(f"bad retry policy {self!r}: attempts >= 1, base_s/cap_s >= 0")

    def bound(self, failures: int) -> float:
        """The longest wait after ``failures`` (1-based) failures in a row."""
        return float(min(self.cap_s, self.base_s * 2.0 ** min(max(0, failures - 1), 64)))

    def delay(self, failures: int, rand: Callable[[], float] = random.random) -> float:
        """The wait after ``failures`` failures in a row (jittered if the policy says so)."""
        b = self.bound(failures)
        return b * rand() if self.jitter else b

    def delays(self, rand: Callable[[], float] = random.random) -> Iterator[float]:
        """The ``attempts - 1`` waits between the tries of one full round."""
        for n in range(1, self.attempts):
            yield self.delay(n, rand)

    def exhausted(self, failures: int) -> bool:
        """True when ``failures`` failures in a row use up the tries."""
        return failures >= self.attempts

    def sleep(
        self,
        seconds: float,
        *,
        clock: Clock = SYSTEM_CLOCK,
        should_stop: Callable[[], bool] | None = None,
    ) -> bool:
        """Wait ``seconds`` on ``clock``, asking ``should_stop`` every ``STOP_POLL_S``;
        False as soon as it says stop (True when the wait ran out)."""
        end = clock.monotonic() + max(0.0, seconds)
        while True:
            if should_stop is not None and should_stop():
                return False
            left = end - clock.monotonic()
            if left <= 0:
                return True
            clock.sleep(min(left, STOP_POLL_S) if should_stop is not None else left)
