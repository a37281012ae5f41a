"""LineSim on real ptys: pacing, latency, full duplex, each fault, seeding, disconnect, stall."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator

import pytest
import serial
from otalink.host.sim.line import FaultConfig, FaultInjector, LineSim


def _ports(sim: LineSim) -> tuple[serial.Serial, serial.Serial]:
    return serial.Serial(sim.host_path, timeout=0.2), serial.Serial(sim.device_path, timeout=0.2)


def _read_for(port: serial.Serial, seconds: float, want: int | None = None) -> bytes:
    out = bytearray()
    end = time.monotonic() + seconds
    while time.monotonic() < end and (want is None or len(out) < want):
        out += port.read(max(1, port.in_waiting))
    return bytes(out)


@pytest.fixture
def sim_factory() -> Iterator[list[LineSim]]:
    sims: list[LineSim] = []
    yield sims
    for s in sims:
        s.stop()


def test_unpaced_relays_both_ways_exactly(sim_factory: list[LineSim]) -> None:
    sim = LineSim(baud=None).start()
    sim_factory.append(sim)
    h, d = _ports(sim)
    a, b = os.urandom(50_000), os.urandom(30_000)
    # Both ends read while both write, as real peers do; generous budgets for a loaded machine.
    got: dict[str, bytes] = {}
    readers = [
        threading.Thread(target=lambda: got.__setitem__("d", _read_for(d, 20, len(a)))),
        threading.Thread(target=lambda: got.__setitem__("h", _read_for(h, 20, len(b)))),
    ]
    for t in readers:
        t.start()
    h.write(a)
    d.write(b)
    for t in readers:
        t.join()
    got_d, got_h = got["d"], got["h"]
    assert got_d == a and got_h == b
    # The relay thread counts a write after os.write returns, so the far end can finish
    # reading a moment before the counters catch up: wait for them, bounded.
    end = time.monotonic() + 5
    while time.monotonic() < end and (sim.delivered_h2d, sim.delivered_d2h) != (len(a), len(b)):
        time.sleep(0.01)
    assert sim.bytes_h2d == len(a) and sim.bytes_d2h == len(b)
    assert sim.delivered_h2d == len(a) and sim.delivered_d2h == len(b)


def test_pacing_is_the_8n1_line_rate_full_duplex(sim_factory: list[LineSim]) -> None:
    baud = 115200
    sim = LineSim(baud=baud).start()
    sim_factory.append(sim)
    h, d = _ports(sim)
    n = 11_520  # 1.0 s each way at 11520 B/s
    a, b = os.urandom(n), os.urandom(n)
    t0 = time.monotonic()
    threading.Thread(target=h.write, args=(a,)).start()
    threading.Thread(target=d.write, args=(b,)).start()
    got: dict[str, bytes] = {}
    rd = threading.Thread(target=lambda: got.__setitem__("d", _read_for(d, 4, n)))
    rd.start()
    got["h"] = _read_for(h, 4, n)
    rd.join()
    elapsed = time.monotonic() - t0
    assert got["d"] == a and got["h"] == b
    # Both directions at once take one second, not two (full duplex), and never less than the
    # line allows (8N1: 10 bits a byte).
    assert 0.97 <= elapsed <= 1.5, elapsed


def test_latency_delays_the_first_byte(sim_factory: list[LineSim]) -> None:
    sim = LineSim(baud=921600, latency_s=0.2).start()
    sim_factory.append(sim)
    h, d = _ports(sim)
    t0 = time.monotonic()
    h.write(b"x")
    got = _read_for(d, 2, 1)
    assert got == b"x"
    assert time.monotonic() - t0 >= 0.2


def test_bit_errors_match_the_counter_and_the_rate(sim_factory: list[LineSim]) -> None:
    sim = LineSim(baud=None, faults=FaultConfig(ber=1e-3, directions="h2d"), seed=7).start()
    sim_factory.append(sim)
    h, d = _ports(sim)
    data = os.urandom(40_000)
    h.write(data)
    got = _read_for(d, 5, len(data))
    assert len(got) == len(data)
    flipped = sum(bin(x ^ y).count("1") for x, y in zip(data, got, strict=True))
    assert flipped == sim.counters()["bits_flipped"]
    expected = len(data) * 8 * 1e-3  # 320
    assert 0.75 * expected < flipped < 1.25 * expected
    # d2h is clean
    d.write(data[:1000])
    assert _read_for(h, 5, 1000) == data[:1000]


def test_burst_drops_lose_a_fraction_in_bursts() -> None:
    inj = FaultInjector(FaultConfig(drop_rate=0.05, drop_burst=16), random.Random(3))
    data = bytes(range(256)) * 2000
    out = inj.apply(data[:100_000]) + inj.apply(data[100_000:])
    lost = len(data) - len(out)
    assert lost == inj.bytes_dropped
    assert 0.04 < lost / len(data) < 0.06
    # what remains is in order: a subsequence of the input
    it = iter(data)
    assert all(b in it for b in out)


def test_duplicates_add_bytes_in_place() -> None:
    inj = FaultInjector(FaultConfig(dup_rate=0.01), random.Random(5))
    data = os.urandom(50_000)
    out = inj.apply(data)
    assert len(out) == len(data) + inj.bytes_duplicated
    assert 300 < inj.bytes_duplicated < 700
    # removing one of each adjacent doubled byte where needed recovers the input
    it = iter(out)
    assert all(b in it for b in data)


def test_same_seed_same_faults() -> None:
    cfg = FaultConfig(ber=1e-3, drop_rate=0.01, drop_burst=4, dup_rate=0.001)
    data = os.urandom(20_000)
    a = FaultInjector(cfg, random.Random(11)).apply(data)
    b = FaultInjector(cfg, random.Random(11)).apply(data)
    c = FaultInjector(cfg, random.Random(12)).apply(data)
    assert a == b != c


def test_disconnect_loses_bytes_and_reconnect_restores(sim_factory: list[LineSim]) -> None:
    sim = LineSim(baud=None).start()
    sim_factory.append(sim)
    h, d = _ports(sim)
    sim.disconnect()
    h.write(b"lost in the cut")
    assert _read_for(d, 0.3) == b""
    sim.reconnect()
    h.write(b"after")
    assert _read_for(d, 2, 5) == b"after"
    assert sim.counters()["disconnects"] == 1


def test_stall_holds_then_delivers(sim_factory: list[LineSim]) -> None:
    sim = LineSim(baud=115200).start()
    sim_factory.append(sim)
    h, d = _ports(sim)
    sim.stall(0.5)
    t0 = time.monotonic()
    h.write(b"held")
    got = _read_for(d, 3, 4)
    assert got == b"held"
    assert time.monotonic() - t0 >= 0.45


def test_stall_with_drop_loses_bytes(sim_factory: list[LineSim]) -> None:
    sim = LineSim(baud=None).start()
    sim_factory.append(sim)
    h, d = _ports(sim)
    sim.stall(0.4, drop=True)
    h.write(b"gone")
    time.sleep(0.5)
    h.write(b"kept")
    assert _read_for(d, 2, 4) == b"kept"


def test_bad_config_is_refused() -> None:
    with pytest.raises(ValueError):
        FaultConfig(ber=1.5)
    with pytest.raises(ValueError):
        FaultConfig(drop_burst=0)
    with pytest.raises(ValueError):
        LineSim(baud=0)
