"""A slow link is a connectivity problem, not a trust failure (issue 10, defect 9).

The real embedded server behind a proxy that turns into a trickle mid-download (a dying cellular
link that never drops): the download must stop as "no stable connection" (``ConnectivityError``,
reason ``unstable``), keep every byte received, and the campaign must pause — not discard the
partial download as it does for a refused (trust) download. Once the link is fast again, the
resume fetches only the rest.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from otalink.host.gateway.campaign.agent import Agent
from otalink.host.gateway.config import AgentConfig, EcuConfig
from otalink.host.gateway.update import errors as E
from otalink.host.gateway.update.client import UpdateClient

from tests.gateway.update.conftest import FAST, VIN, World
from tests.gateway.update.netutil import ThrottlingProxy

# one try without progress, four in all: the slow link gives up within a few seconds
SLOW_POLICY = replace(FAST, max_attempts=1)
FAST_BYTES = 60_000  # the link dies inside the first image (bms, 120 kB)


def _part(world: World, name: str) -> Path:
    return world.tmp / "vehicle" / "downloads" / f"{name}.part"


def test_slow_link_keeps_every_byte_and_resumes_with_the_rest(world: World) -> None:
    plan = world.client().check()
    assert plan is not None
    first = next(iter(plan.images))  # downloads go in plan order
    assert first == "bms-5.1.bin"
    proxy = ThrottlingProxy(world.server.port, fast_bytes=FAST_BYTES, slow_bps=400, piece=40)
    try:
        client = world.client(server_url=proxy.url, policy=SLOW_POLICY)
        t0 = time.monotonic()
        try:
            client.download(plan)
        except E.UpdateError as exc:
            err = exc
        else:
            raise AssertionError("the slow link did not stop the download")
        assert time.monotonic() - t0 < 30
        # a connectivity problem ("a stable connection is required"), never a trust failure
        assert isinstance(err, E.ConnectivityError) and not isinstance(err, E.TrustError), err
        assert isinstance(err, E.SlowRetrievalError) and err.retryable
        assert err.code == "download.slow_retrieval" and err.reason == "unstable"
        # every byte received is on disk (fsynced), none thrown away
        stats = client.downloader.last_stats
        assert stats.failures and set(stats.failures) == {"download.slow_retrieval"}
        part = _part(world, first)
        have = part.stat().st_size
        assert have == stats.bytes_received > FAST_BYTES // 2
        assert part.read_bytes() == world.images[first][:have]
        # the link recovers: the resume asks for the rest only
        proxy.heal()
        files = client.download(plan)
    finally:
        proxy.close()
    for name, path in files.items():
        assert path.read_bytes() == world.images[name]
    assert client.last_stats[first].resumed_from == [have]
    assert client.last_stats[first].bytes_received == len(world.images[first]) - have
    received = sum(s.bytes_received for s in client.last_stats.values())
    assert received == plan.download_size - have


def _agent(world: World, client: UpdateClient, tmp: Path) -> Agent:
    """The real agent on the world's vehicle state (ECUs play no part in downloading)."""
    ecus = tuple(
        EcuConfig(e.ecu_id, e.hw_id, "socket://127.0.0.1:9", bytes(32)) for e in world.config().ecus
    )
    cfg = AgentConfig(
        vehicle_id=VIN,
        state_dir=world.tmp / "vehicle",
        server_url=client.cfg.server_url,
        check_interval_s=0,
        ecus=ecus,
        base_dir=tmp,
    )
    return Agent(cfg, source=client)


def _wait(pred: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_campaign_pauses_on_a_slow_link_and_keeps_the_partial_download(world: World) -> None:
    proxy = ThrottlingProxy(world.server.port, fast_bytes=FAST_BYTES, slow_bps=400, piece=40)
    client = world.client(server_url=proxy.url, policy=SLOW_POLICY)
    agent = _agent(world, client, world.tmp)
    try:
        agent.start()
        agent.commands.check()
        assert agent.view.status().state == "available"
        agent.commands.download_start()

        def transitions() -> list[dict[str, object]]:
            return [e["data"] for e in agent.events.since(0) if e["type"] == "state"]

        _wait(
            lambda: any(t["from"] == "downloading" for t in transitions()),
            60,
            "the download to stop on the slow link",
        )
        stop = next(t for t in transitions() if t["from"] == "downloading")
        # paused for connectivity (it resumes by itself), not failed and discarded
        assert stop["state"] == "download_paused", stop
        assert stop["event"] == "connection_lost" and stop["reason"] == "unstable", stop
        part = _part(world, "bms-5.1.bin")
        assert part.exists() and part.stat().st_size > FAST_BYTES // 2
        proxy.heal()
        _wait(
            lambda: agent.view.status().state in ("downloaded", "awaiting_confirmation"),
            60,
            "the download to complete once the link is fast again",
        )
        assert not any(t["state"] == "available" for t in transitions() if t["from"] != "idle")
    finally:
        agent.stop()
        proxy.close()
    for name in world.images:
        assert (world.tmp / "vehicle" / "downloads" / name).read_bytes() == world.images[name]
