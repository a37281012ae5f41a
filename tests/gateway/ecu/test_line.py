"""One ECU line of the fleet against a scripted ECU on a real pty: per-call timeouts that leave
the client alone, and post-reboot HELLO polls that hear an ECU slow to sign."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from otalink.host.gateway.config import EcuConfig
from otalink.host.gateway.ecu import EcuLinkError
from otalink.host.gateway.ecu import fleet as fl
from otalink.protocol import codes

from tests.gateway.ecu._fakedev import FakeEcu


@pytest.fixture
def fake() -> Iterator[FakeEcu]:
    f = FakeEcu()
    yield f
    f.close()


def _line(fake: FakeEcu, timeout: float = 2.0) -> fl.Line:
    cfg = EcuConfig(
        ecu_id="fake-1", hardware_id="hw-fake", port=fake.peer.port, public_key=fake.key.public
    )
    return fl.Line(cfg, lambda c: fl.default_client(c, timeout=timeout))


def _slow_hello(fake: FakeEcu, seconds: float) -> None:
    answer = fake.peer.answer

    def slow(m: list[Any]) -> list[bytes]:
        if m[0] == codes.MSG_HELLO:
            time.sleep(seconds)  # signing under load; the ECU queues the HELLOs meanwhile
        return answer(m)

    fake.peer.answer = slow


def test_report_timeout_is_per_call(fake: FakeEcu) -> None:
    line = _line(fake, timeout=3.0)
    try:
        info = line.report(fresh_session=True, timeout=0.5)
        assert info.ecu_id == "fake-1" and line.health.ok
        policy = line.client().session.policy
        _slow_hello(fake, 1.0)
        t0 = time.monotonic()
        with pytest.raises(EcuLinkError):
            line.report(fresh_session=True, timeout=0.1)  # 3 tries of 0.1 s, not of 3 s
        assert time.monotonic() - t0 < 1.5
        assert line.client().timeout == 3.0 and line.client().session.policy is policy
        assert line.health.errors == 1
    finally:
        line.close()


def test_hello_poll_hears_an_ecu_slower_to_sign_than_its_tries(fake: FakeEcu) -> None:
    # Each INFO comes 1.7 s after its HELLO; the poll's first report waits 3 x 0.5 s. Before:
    # each report had its own nonce, so the INFOs answering the earlier HELLOs were dropped and
    # the poll ran into its deadline with the ECU answering all along.
    _slow_hello(fake, 1.7)
    line = _line(fake)
    try:
        t0 = time.monotonic()
        info = line.hello_until(t0 + 10.0)
        assert info.ecu_id == "fake-1" and time.monotonic() - t0 < 5.0
        line.restarted()  # the ECU restarts: the next report opens a new session
        assert line.client().info is None
    finally:
        line.close()
