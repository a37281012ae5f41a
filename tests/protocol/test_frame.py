"""FrameParser under random, mutated and chunked input (hypothesis)."""

from __future__ import annotations

import os
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from otalink.protocol import codes, frame
from otalink.protocol.frame import FrameParser
from otalink.protocol.framing import FrameReader

MAXP = 512
payloads = st.binary(min_size=1, max_size=MAXP)


def ref_frame(p: bytes) -> bytes:
    body = struct.pack("<HH", len(p), len(p) ^ 0xFFFF) + p
    return b"\xa5\x5a" + body + struct.pack("<I", zlib.crc32(body))


def run(parser: FrameParser, stream: bytes, cuts: list[int]) -> list[bytes]:
    out: list[bytes] = []
    pos = 0
    for c in [*sorted(set(cuts)), len(stream)]:
        if c > pos:
            out += parser.feed_all(stream[pos:c])
            pos = c
    return out


def pad() -> bytes:
    # Non-SOF bytes so that a false header near the end completes and fails its CRC.
    return b"\x00" * (MAXP + codes.FRAME_OVERHEAD)


def test_encode_frame_matches_reference() -> None:
    for n in (1, 2, 255, 256, 4096, 8192):
        p = os.urandom(n)
        assert frame.frame(p) == ref_frame(p)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.binary(max_size=40), payloads), max_size=8),
    st.lists(st.integers(0, 6000), max_size=12),
)
def test_frames_after_garbage_are_recovered(
    parts: list[tuple[bytes, bytes]], cuts: list[int]
) -> None:
    stream = b"".join(g + ref_frame(p) for g, p in parts) + pad()
    parser = FrameParser(MAXP)
    got = run(parser, stream, cuts)
    assert got == [p for _, p in parts]
    assert parser.frames == len(parts)
    framed = sum(len(p) + codes.FRAME_OVERHEAD for _, p in parts)
    assert parser.dropped_bytes + framed + parser.buffered() == len(stream)
    assert len(parser._buf) == MAXP + codes.FRAME_OVERHEAD  # never grows


@settings(max_examples=200, deadline=None)
@given(st.lists(payloads, min_size=1, max_size=8), st.data())
def test_byte_flips_lose_only_the_touched_frames(pays: list[bytes], data: st.DataObject) -> None:
    frames = [ref_frame(p) for p in pays]
    stream = bytearray(b"".join(frames))
    flips = data.draw(st.lists(st.integers(0, len(stream) - 1), max_size=6))
    for i in flips:
        stream[i] ^= data.draw(st.integers(1, 255))
    touched = set()
    start = 0
    for k, f in enumerate(frames):
        if any(start <= i < start + len(f) for i in flips):
            touched.add(k)
        start += len(f)
    parser = FrameParser(MAXP)
    got = run(parser, bytes(stream) + pad(), data.draw(st.lists(st.integers(0, 5000), max_size=8)))
    untouched = [p for k, p in enumerate(pays) if k not in touched]
    # every untouched frame is found, in order; nothing that was not sent appears
    it = iter(got)
    assert all(any(g == u for g in it) for u in untouched)
    assert all(g in pays for g in got)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000), st.lists(st.integers(0, 3000), max_size=10))
def test_random_streams_only_count_errors(stream: bytes, cuts: list[int]) -> None:
    parser = FrameParser(MAXP)
    got = run(parser, stream, cuts)
    assert parser.frames == len(got)
    assert parser.dropped_bytes + sum(len(g) + 10 for g in got) + parser.buffered() == len(stream)


def test_header_claiming_huge_length_is_dropped_at_once() -> None:
    parser = FrameParser(MAXP)
    bogus = b"\xa5\x5a" + struct.pack("<HH", 0xFFFE, 0xFFFE ^ 0xFFFF)
    good = ref_frame(b"\x81\x0a")
    assert parser.feed_all(bogus + good) == [b"\x81\x0a"]
    assert parser.frame_errors >= 1 and parser.crc_errors == 0


def test_feed_takes_only_what_fits_and_next_frees_space() -> None:
    parser = FrameParser(MAXP)
    f = ref_frame(bytes(MAXP))
    two = f + f
    took = parser.feed(two)
    assert took == len(f)  # the buffer holds exactly one maximum frame
    assert parser.space() == 0
    assert bytes(parser.next()) == bytes(MAXP)
    assert parser.next() is None
    assert parser.feed(two[took:]) == len(f)
    assert bytes(parser.next()) == bytes(MAXP)


def test_feed_with_count_and_readinto_from() -> None:
    import io

    payload = b"\x83\x04\x00\x43abc"
    f = ref_frame(payload)
    parser = FrameParser(MAXP)
    buf = bytearray(100)
    buf[: len(f)] = f
    assert parser.feed(buf, len(f)) == len(f)
    assert bytes(parser.next()) == payload
    src = io.BytesIO(b"\x00junk" + f * 3)
    got = []
    while True:
        p = parser.next()
        if p is not None:
            got.append(bytes(p))
            continue
        if not parser.readinto_from(src):
            break
    assert got == [payload] * 3
    assert parser.dropped_bytes == 5


def test_frame_writer_seals_a_frame() -> None:
    w = frame.FrameWriter(64)
    w.buf[6:9] = b"\x81\x0a\x00"[:3]
    view = w.seal(6 + 2)
    assert bytes(view) == ref_frame(b"\x81\x0a")


class _Trickle:
    """A stream whose readinto returns short reads of the given sizes (a UART driver)."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self.data = data
        self.pos = 0
        self.sizes = sizes or [1]
        self.k = 0

    def readinto(self, b: memoryview) -> int:
        n = min(len(b), self.sizes[self.k % len(self.sizes)], len(self.data) - self.pos)
        self.k += 1
        b[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.binary(max_size=30), payloads), max_size=6),
    st.lists(st.integers(1, 700), min_size=1, max_size=6),
    st.sampled_from([FrameParser, FrameReader]),  # FrameReader: the device's (no feed())
)
def test_readinto_from_with_short_reads_and_garbage(
    parts: list[tuple[bytes, bytes]], sizes: list[int], cls: type[FrameReader]
) -> None:
    stream = b"".join(g + ref_frame(p) for g, p in parts) + pad()
    src = _Trickle(stream, sizes)
    parser = cls(MAXP)
    got = []
    while True:
        p = parser.next()
        if p is not None:
            got.append(bytes(p))
            continue
        if not parser.readinto_from(src) and src.pos >= len(stream):
            break
    assert got == [p for _, p in parts]


@pytest.mark.slow
@settings(max_examples=3000, deadline=None)
@given(
    st.lists(st.tuples(st.binary(max_size=60), payloads), max_size=10),
    st.lists(st.integers(0, 8000), max_size=16),
    st.lists(st.integers(0, 10**6), max_size=8),
)
def test_soak_garbage_flips_and_cuts(
    parts: list[tuple[bytes, bytes]], cuts: list[int], flips: list[int]
) -> None:
    stream = bytearray(b"".join(g + ref_frame(p) for g, p in parts))
    for f in flips:
        if stream:
            stream[f % len(stream)] ^= 0x5A
    parser = FrameParser(MAXP)
    got = run(parser, bytes(stream) + pad(), cuts)
    sent = [p for _, p in parts]
    assert all(g in sent for g in got)
    if not flips:
        assert got == sent


def test_no_allocation_sized_by_a_declared_length() -> None:
    import tracemalloc

    parser = FrameParser(codes.MAX_PAYLOAD_ABS)
    # Headers announcing every large length, valid NLEN, none ever completed with a good CRC.
    stream = b"".join(
        b"\xa5\x5a" + struct.pack("<HH", n, n ^ 0xFFFF) + bytes(n % 7)
        for n in [*range(8000, 8193), *range(60000, 65536, 97)]
    ) + bytes(9000)
    tracemalloc.start()
    try:
        for i in range(0, len(stream), 512):
            assert parser.feed_all(stream[i : i + 512]) == []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Bounded by the parser's capacity (CPython's slice copy when compacting), not by any LEN or
    # by the amount of input: 200 headers and 9 KB of garbage stay under two frame buffers.
    assert peak < 2 * (codes.MAX_PAYLOAD_ABS + codes.FRAME_OVERHEAD), peak
    assert parser.crc_errors >= 1 and parser.frames == 0
