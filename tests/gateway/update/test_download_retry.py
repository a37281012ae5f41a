"""Downloads and metadata fetches wait between attempts with the host's one retry policy, on an
injected clock: the waits are checked without sleeping, and a stop ends a wait at once."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from otalink.host.gateway.update import errors as E
from otalink.host.gateway.update.download import Downloader
from otalink.host.gateway.update.fetcher import OtalinkFetcher
from otalink.host.gateway.update.http import Transport
from otalink.host.gateway.update.types import DownloadPolicy
from otalink.host.retry import STOP_POLL_S

from tests.test_retry import FakeClock

POLICY = DownloadPolicy(
    connect_timeout_s=1.0, max_attempts=4, backoff_base_s=1.0, backoff_max_s=2.0
)


def _dead_url() -> str:
    """A loopback port nobody listens on: every connection is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/image.bin"


def test_download_backs_off_with_the_policy_then_gives_up(tmp_path: Path) -> None:
    clock = FakeClock()
    dl = Downloader(Transport(POLICY), clock=clock)
    with pytest.raises(E.ConnectivityError) as ei:
        dl.fetch(_dead_url(), tmp_path / "image.bin", 1000, "00" * 32)
    assert ei.value.code == "download.connectivity"
    assert dl.last_stats.attempts == POLICY.max_attempts
    # three waits, full jitter below 1 s, 2 s, 2 s (base 1 doubling, capped at 2): on the
    # fake clock only, in steps short enough to notice a stop
    assert 0.0 < clock.t - 100.0 <= 1.0 + 2.0 + 2.0
    assert max(clock.slept) <= STOP_POLL_S


def test_a_stop_during_the_backoff_interrupts_the_download(tmp_path: Path) -> None:
    clock = FakeClock()
    dl = Downloader(Transport(POLICY), clock=clock)
    with pytest.raises(E.DownloadInterrupted):
        # asked to stop once the first wait has begun: no second attempt is made
        dl.fetch(
            _dead_url(),
            tmp_path / "image.bin",
            1000,
            "00" * 32,
            should_stop=lambda: bool(clock.slept),
        )
    assert dl.last_stats.attempts == 1 and len(clock.slept) == 1
    assert clock.slept[0] <= STOP_POLL_S


def test_metadata_fetch_retries_connecting_on_the_clock() -> None:
    clock = FakeClock()
    fetcher = OtalinkFetcher(Transport(POLICY), connect_attempts=3, clock=clock)
    with pytest.raises(E.ConnectivityError):
        fetcher._fetch(_dead_url())
    assert len(clock.slept) == 2 and all(
        d <= b for d, b in zip(clock.slept, (1.0, 2.0), strict=True)
    )
