"""The transfer engine, sans-I/O: tables of events in (BEGIN sent, ACKs, errors, silence, with
the time) and frames out; then a lossy simulated link between TxWindow and RxWindow."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from otalink.protocol import codes, transfer
from otalink.protocol.errors import ProtocolError
from otalink.protocol.transfer import MIN_RTO, RECOVER, RESEND, RxWindow, TxWindow

OH = transfer.DATA_OVERHEAD + codes.FRAME_OVERHEAD  # a DATA frame's bytes beyond its data


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


# ---- tables: (event, now, args..., expected) --------------------------------------------------
# start(now, guess, window)          BEGIN written; the first window may go out on the guess
# send(now, [ranges])                every next_range() until None: exactly these (offset, n)
# begin_ack(now, offset, window)     BEGIN's ACK
# ack(now, offset, window, back)     one ACK; back: did the host go back
# werr(now)                          ERROR E_OUT_OF_WINDOW answering DATA
# heard(now)                         PROGRESS or a late reply: the device is alive
# timeout(now, action)               nothing by the deadline: RESEND / RECOVER
# deadline(now, t)                   wait until t
# overdue(now, flag)
# state(now, {attr: value})          engine fields after the events so far
Step = tuple[Any, ...]


def run(tx: TxWindow, steps: list[Step]) -> None:
    for i, (ev, now, *args) in enumerate(steps):
        where = f"step {i}: {ev} {args}"
        if ev == "start":
            tx.start(now, *args)
        elif ev == "send":
            got = []
            while (r := tx.next_range(now)) is not None:
                got.append(r)
            assert got == args[0], where
        elif ev == "begin_ack":
            tx.on_begin_ack(args[0], args[1], now)
        elif ev == "ack":
            assert tx.on_ack(args[0], args[1], now) is args[2], where
        elif ev == "werr":
            tx.on_window_error(now)
        elif ev == "heard":
            tx.heard(now)
        elif ev == "timeout":
            assert tx.on_timeout(now) == args[0], where
        elif ev == "deadline":
            assert tx.deadline(now) == pytest.approx(args[0]), where
        elif ev == "overdue":
            assert tx.overdue(now) is args[0], where
        elif ev == "state":
            for k, v in args[0].items():
                assert getattr(tx, k) == v, f"{where}: {k}"
        else:
            raise AssertionError(ev)


K = 1000  # chunk of the tables

# fmt: off
TABLES: dict[str, tuple[int, list[Step]]] = {
    # The first window crosses the line behind BEGIN, on the guess; the ACKs slide the window.
    "clean": (5 * K, [
        ("start", 0.0, 0, 3 * K),
        ("send", 0.0, [(0, K), (K, K), (2 * K, K)]),
        ("begin_ack", 0.5, 0, 3 * K),
        ("send", 0.5, []),
        ("ack", 0.51, K, 3 * K, False),
        ("send", 0.51, [(3 * K, K)]),
        ("ack", 0.52, 2 * K, 3 * K, False),
        ("send", 0.52, [(4 * K, K)]),
        ("ack", 0.53, 3 * K, 3 * K, False),
        ("ack", 0.54, 4 * K, 3 * K, False),
        ("state", 0.54, {"done": False}),
        ("ack", 0.55, 5 * K, 3 * K, False),
        ("send", 0.55, []),
        ("state", 0.55, {"done": True, "frames": 5, "retransmitted": 0, "rewinds": 0,
                         "resumed_from": 0}),
    ]),
    # No window before the first ACK: nothing goes out on a guess of window 0.
    "no guess": (3 * K, [
        ("start", 0.0, 0, 0),
        ("send", 0.0, []),
        ("begin_ack", 0.1, 0, 2 * K),
        ("send", 0.1, [(0, K), (K, K)]),
    ]),
    # The device resumes at its own offset: the guessed frames are duplicates it re-ACKs with
    # that offset; those ACKs are stale, not gaps.
    "resume at the device offset": (8 * K, [
        ("start", 0.0, 0, 2 * K),
        ("send", 0.0, [(0, K), (K, K)]),
        ("begin_ack", 0.2, 5 * K, 2 * K),
        ("state", 0.2, {"resumed_from": 5 * K, "acked": 5 * K, "stale": 2}),
        ("send", 0.2, [(5 * K, K), (6 * K, K)]),
        ("ack", 0.21, 5 * K, 2 * K, False),  # the duplicate at 0
        ("ack", 0.22, 5 * K, 2 * K, False),  # the duplicate at K
        ("send", 0.22, []),
        ("ack", 0.23, 6 * K, 2 * K, False),
        ("send", 0.23, [(7 * K, K)]),
        ("state", 0.23, {"rewinds": 0, "stale": 0}),
    ]),
    # A guess from INFO's durable offset that the device confirms: no frame is wasted.
    "resume on the guess": (4 * K, [
        ("start", 0.0, 2 * K, 2 * K),
        ("send", 0.0, [(2 * K, K), (3 * K, K)]),
        ("begin_ack", 0.1, 2 * K, 2 * K),
        ("ack", 0.11, 3 * K, 2 * K, False),
        ("ack", 0.12, 4 * K, 2 * K, False),
        ("state", 0.12, {"done": True, "frames": 2, "resumed_from": 2 * K}),
    ]),
    # The frame at K is lost: the device ACKs K for it (a gap) and for each later frame in flight
    # (echoes). The host goes back once, with half-size frames, and halves its congestion window.
    "gap: go back once": (6 * K, [
        ("start", 0.0, 0, 4 * K),
        ("send", 0.0, [(0, K), (K, K), (2 * K, K), (3 * K, K)]),
        ("begin_ack", 0.1, 0, 4 * K),
        ("ack", 0.11, K, 4 * K, False),
        ("send", 0.11, [(4 * K, K)]),
        ("ack", 0.12, K, 4 * K, True),  # the gap: frame K lost, 3K and 4K still in flight
        ("state", 0.12, {"next_offset": K, "chunk": K // 2, "stale": 2, "cwnd": 2 * K,
                         "rewinds": 1}),
        # a congestion window of 2K past the acknowledged K
        ("send", 0.12, [(K, K // 2), (K + K // 2, K // 2), (2 * K, K // 2),
                        (2 * K + K // 2, K // 2)]),
        ("ack", 0.13, K, 4 * K, False),  # echo of 3K
        ("ack", 0.14, K, 4 * K, False),  # echo of 4K
        ("ack", 0.15, K + K // 2, 4 * K, False),
        ("state", 0.15, {"retransmitted": 2 * K, "rewinds": 1}),
    ]),
    # An ACK below the acknowledged offset: the device went back, and it owns the offset.
    "device went back": (6 * K, [
        ("start", 0.0, 0, 3 * K),
        ("send", 0.0, [(0, K), (K, K), (2 * K, K)]),
        ("begin_ack", 0.1, 0, 3 * K),
        ("ack", 0.11, 2 * K, 3 * K, False),
        ("ack", 0.12, K, 3 * K, True),
        ("state", 0.12, {"acked": K, "next_offset": K}),
        ("send", 0.12, [(K, K // 2), (K + K // 2, K // 2), (2 * K, K // 2),
                        (2 * K + K // 2, K // 2), (3 * K, K // 2), (3 * K + K // 2, K // 2)]),
    ]),
    # ERROR E_OUT_OF_WINDOW answering DATA: back to the last ACKed offset.
    "window error": (4 * K, [
        ("start", 0.0, 0, 2 * K),
        ("send", 0.0, [(0, K), (K, K)]),
        ("begin_ack", 0.1, 0, 2 * K),
        ("ack", 0.11, K, 2 * K, False),
        ("send", 0.11, [(2 * K, K)]),
        ("werr", 0.12),
        ("state", 0.12, {"next_offset": K, "rewinds": 1, "chunk": K // 2}),
    ]),
    # Silence after DATA: RESEND from the last ACK (after flushing the largest frame in flight),
    # the timer doubling up to the reply timeout; silence for twice the reply timeout: RECOVER.
    "timeouts": (8 * K, [
        ("start", 0.0, 0, 2 * K),
        ("send", 0.0, [(0, K), (K, K)]),
        ("begin_ack", 0.1, 0, 2 * K),
        ("state", 0.1, {"rto": 4 * MIN_RTO}),
        ("deadline", 0.1, 0.1 + 4 * MIN_RTO),
        ("timeout", 0.5, RESEND),
        ("state", 0.5, {"flush_bytes": K + OH, "next_offset": 0, "rto": 8 * MIN_RTO,
                        "cwnd": 1 << 30, "in_flight": 0, "stale": 2}),
        ("send", 0.5, [(0, K // 2), (K // 2, K // 2), (K, K // 2), (K + K // 2, K // 2)]),
        ("timeout", 1.3, RESEND),
        ("state", 1.3, {"flush_bytes": K // 2 + OH, "rto": 1.6}),
        ("send", 1.3, [(0, K // 4), (K // 4, K // 4), (K // 2, K // 4), (3 * K // 4, K // 4),
                       (K, K // 4), (5 * K // 4, K // 4), (6 * K // 4, K // 4),
                       (7 * K // 4, K // 4)]),
        ("timeout", 2.9, RESEND),
        ("state", 2.9, {"rto": 2.0}),
        ("timeout", 4.2, RECOVER),  # over 4 s (twice the reply timeout) since last heard
    ]),
    # A stall: the retransmit timer fires, the host resends, then the first copies' ACKs arrive
    # late and the device re-ACKs each resent frame it already has. Those repeats answer frames
    # below the device's offset: duplicates, not losses (no go-back cascade after a stall).
    "stall: the resends are duplicates": (8 * K, [
        ("start", 0.0, 0, 4 * K),
        ("send", 0.0, [(0, K), (K, K), (2 * K, K), (3 * K, K)]),
        ("begin_ack", 0.1, 0, 4 * K),
        ("timeout", 0.5, RESEND),
        ("send", 0.5, [(i * K // 2, K // 2) for i in range(8)]),
        ("ack", 1.0, K, 4 * K, False),  # the late first copies
        ("ack", 1.01, 2 * K, 4 * K, False),
        ("ack", 1.02, 3 * K, 4 * K, False),
        ("ack", 1.03, 4 * K, 4 * K, False),
        ("send", 1.03, [(4 * K + i * K // 2, K // 2) for i in range(8)]),
        *[("ack", 1.1 + i / 100, 4 * K, 4 * K, False) for i in range(8)],  # the duplicates
        ("state", 1.2, {"rewinds": 1, "in_flight": 8, "chunk": K // 2, "cwnd": 1 << 30}),
        ("ack", 1.3, 4 * K + K // 2, 4 * K, False),
        # a real loss after it is still one: the frame at 4.5K lost, 5K answers with 4.5K
        ("ack", 1.31, 4 * K + K // 2, 4 * K, True),
    ]),
    # The first-data timeout: BEGIN's ACK may wait for the slot erase, each PROGRESS restarting
    # the reply timer; unanswered for the reply timeout, or past the first-data one: RECOVER.
    "first data": (4 * K, [
        ("start", 10.0, 0, 0),
        ("deadline", 10.0, 12.0),
        ("heard", 11.5),  # PROGRESS(PH_ERASING)
        ("deadline", 11.5, 13.5),
        ("overdue", 20.0, False),
        ("deadline", 39.0, 40.0),  # capped by the first-data timeout
        ("overdue", 40.5, True),
        ("timeout", 40.5, RECOVER),
    ]),
    "begin unanswered": (4 * K, [
        ("start", 0.0, 0, 2 * K),
        ("send", 0.0, [(0, K), (K, K)]),
        ("timeout", 2.0, RECOVER),
    ]),
    # A device that keeps ACKing without moving the offset ends the attempt after stall_timeout.
    "stall": (4 * K, [
        ("start", 0.0, 0, 0),
        ("begin_ack", 0.1, 0, 0),  # window 0: the device pauses the host
        ("send", 0.1, []),
        ("ack", 30.0, 0, 0, False),
        ("overdue", 60.0, False),
        ("overdue", 60.2, True),
        ("ack", 60.3, 0, 2 * K, False),  # the window reopens
        ("send", 60.3, [(0, K), (K, K)]),
        ("ack", 60.4, K, 2 * K, False),
        ("overdue", 61.0, False),
    ]),
    # A later attempt (after RECOVER) keeps frame size and congestion window, restarts the RTT
    # estimate; resumed_from stays the first BEGIN's.
    "second attempt": (4 * K, [
        ("start", 0.0, 0, 2 * K),
        ("send", 0.0, [(0, K), (K, K)]),
        ("begin_ack", 0.1, 0, 2 * K),
        ("ack", 0.12, K, 2 * K, False),
        ("ack", 0.13, K, 2 * K, True),  # frame K lost
        ("timeout", 5.0, RECOVER),
        ("start", 6.0, K, 2 * K),
        ("state", 6.0, {"chunk": K // 2, "cwnd": K, "srtt": 0.0, "begun": False,
                        "resumed_from": 0}),
        ("send", 6.0, [(K, K // 2), (K + K // 2, K // 2)]),  # the congestion window: K
        ("begin_ack", 6.1, K, 2 * K),
        ("state", 6.1, {"resumed_from": 0, "stale": 0, "in_flight": 2}),
    ]),
}
# fmt: on


@pytest.mark.parametrize("name", list(TABLES))
def test_engine_table(name: str) -> None:
    wire_len, steps = TABLES[name]
    run(TxWindow(wire_len, K, reply_timeout=2.0, first_timeout=30.0), steps)


def test_frames_grow_back_after_clean_acks() -> None:
    tx = TxWindow(100 * K, K)
    tx.start(0.0, 0, 0)
    tx.on_begin_ack(0, 2 * K, 0.0)
    assert tx.next_range(0.0) == (0, K) and tx.next_range(0.0) == (K, K)
    tx.on_ack(K, 2 * K, 0.01)
    assert tx.next_range(0.01) == (2 * K, K)
    assert tx.on_ack(K, 2 * K, 0.02) is True  # a gap: halved
    assert tx.chunk == K // 2 and tx.cwnd == K
    off = K
    for i in range(transfer.GROW_AFTER):
        r = tx.next_range(0.1 + i)
        assert r == (off, K // 2), i
        off += K // 2
        tx.on_ack(off, 2 * K, 0.1 + i)
    assert tx.chunk == K  # grown back
    assert tx.cwnd > 2 * K  # and the congestion window grew by a chunk per clean ACK


def test_echo_of_a_gap_within_a_round_trip_is_not_a_new_loss() -> None:
    tx = TxWindow(20 * K, K)
    tx.start(0.0, 0, 0)
    tx.on_begin_ack(0, 4 * K, 0.0)
    for _ in range(4):
        tx.next_range(0.0)
    tx.on_ack(K, 4 * K, 0.05)  # srtt 0.05
    assert tx.on_ack(K, 4 * K, 0.06) is True
    while tx.next_range(0.06):
        pass
    tx.stale = 0  # the echoes were lost: the next repeat of K is not known to be one
    assert tx.on_ack(K, 4 * K, 0.10) is False  # within max(MIN_RTO, 2 srtt) of the go-back
    assert tx.on_ack(K, 4 * K, 0.30) is True  # later: a new loss of the same frame


def test_rtt_estimator_follows_rfc6298() -> None:
    tx = TxWindow(100 * K, K, reply_timeout=2.0)
    tx.start(0.0, 0, 0)
    tx.on_begin_ack(0, 50 * K, 0.0)
    samples = [0.2, 0.3, 0.1, 0.25, 0.05, 0.05, 0.05, 0.05]
    srtt = rttvar = 0.0
    t = 0.0
    for i, r in enumerate(samples):
        assert tx.next_range(t) == (i * K, K)
        t += r
        tx.on_ack((i + 1) * K, 50 * K, t)
        if i == 0:
            srtt, rttvar = r, r / 2
        else:
            rttvar = 0.75 * rttvar + 0.25 * abs(srtt - r)
            srtt = 0.875 * srtt + 0.125 * r
        assert tx.srtt == pytest.approx(srtt) and tx.rttvar == pytest.approx(rttvar)
        assert tx.rto == pytest.approx(min(2.0, max(MIN_RTO, srtt + 4 * rttvar)))
    # ACKs of frames sent long ago (retransmissions) still sample: the latest send counts
    big = TxWindow(10 * K, K, reply_timeout=2.0)
    big.start(0.0, 0, 0)
    big.on_begin_ack(0, 4 * K, 0.0)
    big.next_range(0.0)
    big.on_ack(K, 4 * K, 10.0)  # 10 s: capped at the reply timeout
    assert big.rto == 2.0


def test_first_rto_is_the_time_to_carry_a_window() -> None:
    tx = TxWindow(100 * K, K, reply_timeout=2.0, byte_time=10 / 115200)
    tx.start(0.0, 0, 4 * K)
    assert tx.rto == pytest.approx(2 * 4 * K * 10 / 115200 + MIN_RTO)
    tx.start(0.0, 0, 0)
    assert tx.rto == pytest.approx(4 * MIN_RTO)  # nothing to carry: the floor
    slow = TxWindow(100 * K, K, reply_timeout=2.0, byte_time=10 / 9600)
    slow.start(0.0, 0, 16 * K)
    assert slow.rto == 2.0  # never past the reply timeout


def test_offsets_past_the_stream_are_protocol_errors() -> None:
    tx = TxWindow(10 * K, K)
    tx.start(0.0, 11 * K, 2 * K)  # a guess past the stream: from 0
    assert tx.next_range(0.0) == (0, K)
    with pytest.raises(ProtocolError) as ei:
        tx.on_begin_ack(10 * K + 1, 1, 0.1)
    assert ei.value.code == codes.E_BAD_OFFSET
    tx.on_begin_ack(0, 2 * K, 0.1)
    with pytest.raises(ProtocolError):
        tx.on_ack(10 * K + 1, 1, 0.2)
    with pytest.raises(ValueError):
        TxWindow(10, 0)


def test_empty_stream_is_done_at_begin_ack() -> None:
    tx = TxWindow(0, K)
    tx.start(0.0, 0, 4 * K)
    assert tx.next_range(0.0) is None and not tx.done
    tx.on_begin_ack(0, 4 * K, 0.1)
    assert tx.done


# ---- a lossy link ---------------------------------------------------------------------------
def simulate(
    wire_len: int, chunk: int, window: int, loss: float, seed: int, resume_at: int = 0,
    guess: int = 0,
) -> tuple[bytes, TxWindow]:  # fmt: skip
    """A transfer over a lossy, in-order link: each round the host sends what the engine gives,
    the device (RxWindow) answers each DATA it receives, the host takes the ACKs that arrive;
    silence is a timeout. RECOVER re-sends BEGIN (the device keeps its offset)."""
    rng = random.Random(seed)
    image = rng.randbytes(wire_len)
    got = bytearray(image[:resume_at])
    rx = RxWindow(window, wire_len=wire_len, expected=resume_at)
    tx = TxWindow(wire_len, chunk, reply_timeout=2.0)
    now = 0.0
    tx.start(now, guess, window)
    begin_pending = True
    rounds = 0
    while not tx.done:
        rounds += 1
        assert rounds < 100_000, "no progress"
        h2d: list[tuple[int, int] | None] = [None] if begin_pending else []
        begin_pending = False
        while (r := tx.next_range(now)) is not None:
            h2d.append(r)
        d2h: list[tuple[str, int]] = []
        for frame in h2d:
            if rng.random() < loss:
                continue  # lost on the way to the device
            if frame is None:
                reply = ("begin", rx.expected)
            else:
                off, n = frame
                c = rx.classify(off, n)
                if c == transfer.OUT_OF_WINDOW:
                    reply = ("werr", rx.expected)
                else:
                    if c == transfer.ACCEPT:
                        got += image[off : off + n]
                        rx.accept(n)
                    reply = ("ack", rx.expected)
            if rng.random() >= loss:
                d2h.append(reply)
        now += 0.05
        for kind, off in d2h:
            if kind == "begin":
                if not tx.begun:
                    tx.on_begin_ack(off, window, now)
                # (a second BEGIN answer after a lost first one: its ACK is a plain ACK)
                elif tx.on_ack(off, window, now):
                    pass
            elif not tx.begun:
                tx.heard(now)  # a DATA answer overtaking the lost BEGIN answer
            elif kind == "werr":
                tx.on_window_error(now)
            else:
                tx.on_ack(off, window, now)
        if not d2h:
            now = tx.deadline(now)
            if tx.on_timeout(now) == RECOVER:
                now += 0.1
                tx.start(now, tx.acked, window)
                begin_pending = True
    assert bytes(got) == image
    assert rx.expected == wire_len
    return bytes(got), tx


def test_clean_transfer() -> None:
    _, tx = simulate(256 * 1024, 4080, 16320, 0.0, 1)
    assert tx.frames == (256 * 1024 + 4079) // 4080 and tx.retransmitted == 0


def test_resume_sends_only_the_rest() -> None:
    _, tx = simulate(100 * K, K, 4 * K, 0.0, 1, resume_at=60 * K, guess=60 * K)
    assert tx.resumed_from == 60 * K and tx.frames == 40 and tx.retransmitted == 0


@settings(max_examples=80, deadline=None)
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
    guess = data.draw(st.sampled_from([0, resume]))
    simulate(wire_len, chunk, window, loss, seed, resume, guess)
