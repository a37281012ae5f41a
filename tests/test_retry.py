"""The host's one retry policy: bounds, jitter, rounds, and waits on an injected clock."""

from __future__ import annotations

import pytest
from otalink.host.retry import STOP_POLL_S, RetryPolicy


class FakeClock:
    """Monotonic time that moves only when something sleeps on it."""

    def __init__(self) -> None:
        self.t = 100.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


def test_backoff_doubles_up_to_the_cap() -> None:
    p = RetryPolicy(attempts=6, base_s=0.5, cap_s=3.0, jitter=False)
    assert [p.bound(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    assert list(p.delays()) == [0.5, 1.0, 2.0, 3.0, 3.0]  # attempts - 1 waits
    assert p.bound(10_000) == 3.0  # no overflow on a long outage
    assert not p.exhausted(5) and p.exhausted(6)


def test_full_jitter_draws_below_the_bound() -> None:
    p = RetryPolicy(attempts=4, base_s=1.0, cap_s=8.0)
    assert p.delay(3, rand=lambda: 0.0) == 0.0
    assert p.delay(3, rand=lambda: 0.5) == 2.0
    draws = [p.delay(4) for _ in range(200)]
    assert all(0.0 <= d <= 8.0 for d in draws) and len(set(draws)) > 1


@pytest.mark.parametrize("bad", [{"attempts": 0}, {"base_s": -1.0}, {"cap_s": -0.5}])
def test_nonsense_policies_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="retry policy"):
        RetryPolicy(**bad)  # type: ignore[arg-type]


def test_sleep_waits_on_the_injected_clock() -> None:
    clock = FakeClock()
    assert RetryPolicy().sleep(2.5, clock=clock) is True
    assert clock.t == pytest.approx(102.5) and clock.slept == [2.5]


def test_sleep_asks_should_stop_while_it_waits() -> None:
    clock = FakeClock()
    stop_at = clock.t + 0.3
    assert RetryPolicy().sleep(60.0, clock=clock, should_stop=lambda: clock.t >= stop_at) is False
    assert clock.t - 100.0 < 0.3 + 2 * STOP_POLL_S  # stopped within a poll, not after 60 s
    assert max(clock.slept) <= STOP_POLL_S
    clock2 = FakeClock()
    assert RetryPolicy().sleep(0.2, clock=clock2, should_stop=lambda: False) is True
    assert clock2.t == pytest.approx(100.2)
