"""Downloads that survive real networks: the connection is cut mid-transfer several times, against
the embedded server and against nginx; every resume starts exactly at the break point."""

from __future__ import annotations

import hashlib
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from otalink.host.gateway.update import errors as E
from otalink.host.gateway.update.download import Downloader
from otalink.host.gateway.update.http import Transport
from otalink.host.tools.server.app import start_server

from tests.gateway.update.conftest import FAST, World
from tests.gateway.update.netutil import CuttingProxy, nginx

SIZE = 1_000_000
DATA = hashlib.shake_256(b"resume").digest(SIZE)
SHA = hashlib.sha256(DATA).hexdigest()
# bytes each connection may carry back to the client before the link drops (headers included)
BUDGETS = [137_001, 250_000, 99_999, 300_000]


@pytest.fixture(params=["embedded", "nginx"])
def origin(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "www"
    root.mkdir()
    (root / "image.bin").write_bytes(DATA)
    if request.param == "embedded":
        with start_server(root) as srv:
            yield srv.url
    else:
        with nginx(root, tmp_path / "nginx") as url:
            yield url


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_resume_after_repeated_cuts(origin: str, tmp_path: Path) -> None:
    proxy = CuttingProxy(_port(origin), BUDGETS)
    try:
        dl = Downloader(Transport(FAST))
        seen: list[int] = []
        dest = dl.fetch(
            f"{proxy.url}/image.bin",
            tmp_path / "out" / "image.bin",
            SIZE,
            SHA,
            on_chunk=lambda done, total, start, attempt: seen.append(done),
        )
        st = dl.last_stats
    finally:
        proxy.close()
    assert dest.read_bytes() == DATA  # byte for byte
    assert proxy.cuts == len(BUDGETS)
    assert st.failures == ["download.connectivity"] * len(BUDGETS)
    # each request starts exactly where the previous one broke off ...
    starts = st.resumed_from
    assert starts[0] == 0 and len(starts) == len(BUDGETS) + 1
    assert all(b > a for a, b in itertools.pairwise(starts))
    # ... so not one byte before a break point was fetched twice
    assert st.bytes_received == SIZE
    assert st.bytes_discarded == 0
    assert seen == sorted(seen) and seen[-1] == SIZE
    assert not (tmp_path / "out" / "image.bin.part").exists()


def test_gives_up_when_no_progress(origin: str, tmp_path: Path) -> None:
    proxy = CuttingProxy(_port(origin), [10] * 50)  # dies inside the headers every time
    try:
        dl = Downloader(Transport(FAST))
        with pytest.raises(E.ConnectivityError) as ei:
            dl.fetch(f"{proxy.url}/image.bin", tmp_path / "image.bin", SIZE, SHA)
    finally:
        proxy.close()
    assert ei.value.retryable
    assert dl.last_stats.attempts == FAST.max_attempts  # bounded retries


def test_no_retry_on_4xx(origin: str, tmp_path: Path) -> None:
    dl = Downloader(Transport(FAST))
    with pytest.raises(E.HttpStatusError) as ei:
        dl.fetch(f"{origin}/missing.bin", tmp_path / "m.bin", 10, "00" * 32)
    assert ei.value.status == 404 and not ei.value.retryable
    assert dl.last_stats.attempts == 1


_CHILD = """
import sys
from pathlib import Path
from otalink.host.gateway.update.download import Downloader
from otalink.host.gateway.update.http import Transport
from otalink.host.gateway.update.types import DownloadPolicy
dl = Downloader(Transport(DownloadPolicy(checkpoint_bytes=32 * 1024, chunk_size=8192)))
def tick(done, total, start, attempt):
    if done >= 64 * 1024:
        print(done, flush=True)
dl.fetch(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4], on_chunk=tick)
"""


def test_resume_after_the_process_is_killed(tmp_path: Path) -> None:
    """kill -9 of the downloading process: a new process resumes from the partial file."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "image.bin").write_bytes(DATA)
    dest = tmp_path / "out" / "image.bin"
    with start_server(root, rate_bps=200_000) as srv:
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, f"{srv.url}/image.bin", str(dest), str(SIZE), SHA],
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert child.stdout is not None
        child.stdout.readline()  # it has at least 64 KiB on disk
        time.sleep(0.1)
        child.send_signal(signal.SIGKILL)
        child.wait()
        part = dest.with_name("image.bin.part")
        have = part.stat().st_size
        assert 0 < have < SIZE
        srv.set_rate(None)
        dl = Downloader(Transport(FAST))
        dl.fetch(f"{srv.url}/image.bin", dest, SIZE, SHA)
    assert dest.read_bytes() == DATA
    assert dl.last_stats.resumed_from == [have]
    assert dl.last_stats.bytes_received == SIZE - have


def test_campaign_download_through_cutting_link(world: World) -> None:
    """The whole client path (metadata + two images) through a link that keeps dropping."""
    plan = world.client().check()
    assert plan is not None
    proxy = CuttingProxy(world.server.port, [0, 50_000, 70_000, 20_000, 90_000])
    try:
        client = world.client(server_url=proxy.url)
        files = client.download(plan)
    finally:
        proxy.close()
    for name, path in files.items():
        assert path.read_bytes() == world.images[name]
    received = sum(s.bytes_received for s in client.last_stats.values())
    assert received == plan.download_size  # nothing fetched twice
