"""Window bookkeeping: a simulated lossy link between TxWindow and RxWindow."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from otalink.protocol import codes, transfer
from otalink.protocol.errors import ProtocolError
from otalink.protocol.transfer import RxWindow, TxWindow


def test_classify() -> None:
    rx = RxWindow(1000, wire_len=5000, expected=100)
    assert rx.classify(100, 500) == transfer.ACCEPT
    assert rx.classify(50, 10) == transfer.DUP
    assert rx.classify(600, 100) == transfer.GAP
    assert rx.classify(1000, 200) == transfer.OUT_OF_WINDOW
    assert rx.classify(100, 1001) == transfer.OUT_OF_WINDOW
    assert rx.classify(100, 0) == transfer.OUT_OF_WINDOW
    assert RxWindow(10**6, wire_len=150, expected=100).classify(100, 51) == transfer.OUT_OF_WINDOW
    assert rx.accept(500) == 600 and rx.expected == 600


def test_tx_respects_window_and_resume() -> None:
    tx = TxWindow(10000, 1000)
    assert tx.next_range() is None  # no window before the first ACK
    tx.resume(3000, 2500)
    assert tx.next_range() == (3000, 1000)
    assert tx.next_range() == (4000, 1000)
    assert tx.next_range() == (5000, 500)
    assert tx.next_range() is None
    tx.on_ack(4000, 2500)
    assert tx.next_range() == (5500, 1000)
    with pytest.raises(ProtocolError) as ei:
        tx.resume(10001, 1)
    assert ei.value.code == codes.E_BAD_OFFSET
    with pytest.raises(ProtocolError):
        tx.on_ack(10001, 1)


def simulate(
    wire_len: int, chunk: int, window: int, loss: float, seed: int, resume_at: int = 0
) -> tuple[bytes, int]:
    """Run a transfer over a lossy, in-order link; returns (received bytes, round trips)."""
    rng = random.Random(seed)
    image = bytes(rng.getrandbits(8) for _ in range(wire_len))
    got = bytearray(image[:resume_at])
    rx = RxWindow(window, wire_len=wire_len, expected=resume_at)
    tx = TxWindow(wire_len, chunk)
    tx.resume(resume_at, window)
    steps = 0
    while not tx.done:
        steps += 1
        assert steps < 100000, "no progress"
        sent = []
        while (r := tx.next_range()) is not None:
            sent.append(r)
        if not sent:
            tx.on_timeout()
            continue
        acks = []
        for off, n in sent:
            if rng.random() < loss:
                continue  # DATA lost
            c = rx.classify(off, n)
            assert c != transfer.OUT_OF_WINDOW, (off, n, rx.expected)
            if c == transfer.ACCEPT:
                got += image[off : off + n]
                rx.accept(n)
            if rng.random() >= loss:
                acks.append((rx.expected, rx.window))
        if not acks:
            tx.on_timeout()
        for a in acks:
            tx.on_ack(*a)
    assert bytes(got) == image
    return bytes(got), steps


def test_clean_transfer() -> None:
    _, steps = simulate(256 * 1024, 4080, 16320, 0.0, 1)
    assert steps == (256 * 1024 + 16319) // 16320


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 40000),
    st.integers(16, 3000),  # tiny chunks make tens of thousands of rounds for no new state
    st.integers(1, 12000),
    st.sampled_from([0.0, 0.05, 0.3]),
    st.integers(0, 2**16),
    st.data(),
)
def test_lossy_transfers_complete(
    wire_len: int, chunk: int, window: int, loss: float, seed: int, data: st.DataObject
) -> None:
    resume = data.draw(st.integers(0, wire_len))
    simulate(wire_len, chunk, window, loss, seed, resume)
