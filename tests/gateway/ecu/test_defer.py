"""Sans-I/O parts of the application channel's host side: an application's DEFER retried by
policy (``defer.retry_deferred``) and the newest event per channel (``appchan.AppEvents``)."""

from __future__ import annotations

import pytest
from otalink.host.gateway.ecu.appchan import AppEvents
from otalink.host.gateway.ecu.defer import MIN_WAIT_S, retry_deferred
from otalink.host.gateway.ecu.errors import EcuDeferred
from otalink.host.gateway.ecu.wire import App, Progress
from otalink.protocol import codes


def _deferring(times: int, retry_after: int) -> tuple[list[int], object]:
    calls = [0]

    def call() -> str:
        calls[0] += 1
        if calls[0] <= times:
            raise EcuDeferred(codes.MSG_BEGIN, retry_after, "assist active")
        return "done"

    return calls, call


def test_deferred_call_is_retried_after_what_the_ecu_asked() -> None:
    calls, call = _deferring(2, 10)
    told: list[tuple[str, float]] = []
    waits: list[float] = []
    got = retry_deferred(
        call,  # type: ignore[arg-type]
        max_s=60,
        on_defer=lambda e, s: told.append((e.reason, s)),
        wait=waits.append,
    )
    assert got == "done" and calls == [3]
    assert told == [("assist active", 10.0)] * 2 and waits == [10.0, 10.0]


def test_deferral_past_the_policy_raises_the_ecu_reason() -> None:
    calls, call = _deferring(99, 10)
    waits: list[float] = []
    with pytest.raises(EcuDeferred) as ei:
        retry_deferred(call, max_s=25, on_defer=lambda e, s: None, wait=waits.append)  # type: ignore[arg-type]
    assert waits == [10.0, 10.0] and calls == [3]  # a third wait would pass 25 s
    assert ei.value.code == "ecu_rejected.e_deferred" and "assist active" in str(ei.value)
    # a DEFER asking for no wait is not retried in a busy loop
    _, now = _deferring(1, 0)
    waits.clear()
    retry_deferred(now, max_s=5, on_defer=lambda e, s: None, wait=waits.append)  # type: ignore[arg-type]
    assert waits == [MIN_WAIT_S]


def test_app_events_keep_the_newest_per_channel() -> None:
    t = [100.0]
    ev = AppEvents(lambda: t[0])
    ev.on_message(App(1, 0, b"\x20\x03"))
    t[0] = 101.0
    ev.on_message(App(1, 0, b"\x1f\x03"))
    ev.on_message(App(4, 0, b"x"))
    ev.on_message(App(1, 7, b"reply"))  # a reply (id 7), not an event
    ev.on_message(Progress(1, 2, 3))  # not an APP message
    latest = ev.latest()
    assert [(e.chan, e.data, e.ts, e.count) for e in latest] == [
        (1, b"\x1f\x03", 101.0, 2),
        (4, b"x", 101.0, 1),
    ]
    assert ev.get(2) is None
