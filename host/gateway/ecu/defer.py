"""An ECU application's DEFER of an offered update (docs/protocol.md 4.4), retried by policy.

Public interface (stable):
    retry_deferred(call, *, max_s, on_defer, wait) -> call's result
        ``call`` (a BEGIN: the uploader's install) again after each ``EcuDeferred``, after the
        ``retry_after_s`` the ECU asked for (at least ``MIN_WAIT_S``), for at most ``max_s``
        seconds of waiting in all; past that the last ``EcuDeferred`` is raised (its code:
        ``ecu_rejected.e_deferred``, its message the application's reason).
        ``on_defer(exc, seconds)`` is told before each wait; ``wait(seconds)`` waits (the caller
        checks its stop conditions there and may free the line meanwhile).

Nothing changed on the ECU when it deferred (BEGIN was verified, nothing erased), so the retry
is the same request from the start.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from otalink.host.gateway.ecu.errors import EcuDeferred

T = TypeVar("T")
MIN_WAIT_S = 0.5  # a DEFER asking for 0 s is not retried in a busy loop


def retry_deferred(
    call: Callable[[], T],
    *,
    max_s: float,
    on_defer: Callable[[EcuDeferred, float], None],
    wait: Callable[[float], None],
) -> T:
    """``call()``, again after each DEFER, within ``max_s`` seconds of waiting (module doc)."""
    waited = 0.0
    while True:
        try:
            return call()
        except EcuDeferred as exc:
            pause = max(float(exc.retry_after_s), MIN_WAIT_S)
            if waited + pause > max_s:
                raise
            on_defer(exc, pause)
            wait(pause)
            waited += pause
