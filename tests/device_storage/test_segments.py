"""Resumable deflate segments (compression code 2): host encoder + the real MicroPython Slots.

A segmented transfer checkpoints at every segment end on an erase-sector boundary and, after a
reboot, BEGIN answers exactly the last such wire offset (a plain deflate transfer restarts at 0).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
from otalink.host.gateway.ecu import segments
from otalink.protocol import codes as C

from tests.device_storage.conftest import MpRun
from tests.device_storage.sweep import deflate_raw, image
from tests.device_storage.test_memory import _run

SEG = segments.COMP_DEFLATE_SEG


def test_encoder_roundtrip_and_boundaries() -> None:
    img = image(7, 70_000)
    wire = segments.encode(img, 10, 16384)
    assert segments.decode(wire, 10) == img
    b = segments.boundaries(wire, 10)
    assert [i for _, i in b] == [16384, 32768, 49152, 65536, 70_000]
    assert b[-1][0] == len(wire)
    # each segment is a complete raw-deflate stream a 1 KiB-window decoder inflates on its own
    w = 0
    for end, _ in b:
        n = int.from_bytes(wire[w : w + 4], "little")
        assert w + 4 + n == end
        d = zlib.decompressobj(-10)
        d.decompress(wire[w + 4 : end])
        assert d.eof and not d.unused_data
        w = end


def test_encoder_rejects_bad_parameters_and_bad_wire() -> None:
    img = image(8, 9000)
    with pytest.raises(ValueError):
        segments.encode(img, 8)
    with pytest.raises(ValueError):
        segments.encode(img, 10, 5000)
    wire = segments.encode(img, 10, 4096)
    with pytest.raises(segments.SegmentError):
        segments.boundaries(wire[:-3], 10)
    with pytest.raises(segments.SegmentError):
        segments.boundaries(wire + b"\x00\x00", 10)


def _expected_resume(wire: bytes, image_len: int, at: int, erase: int = 4096) -> int:
    best = 0
    for w, i in segments.boundaries(wire, 10):
        if w <= at and i % erase == 0 and i < image_len:
            best = w
    return best


@pytest.mark.parametrize("frac", [0.1, 0.45, 0.7, 0.95])
def test_segmented_transfer_resumes_after_reboot(mp_run: MpRun, tmp_path: Path,
                                                 frac: float) -> None:  # fmt: skip
    img = image(9, 100_000)
    wire = segments.encode(img, 10, 16384)
    at = int(len(wire) * frac)
    out = _run(mp_run, tmp_path, [(img, wire, SEG)], reboot_at=at)
    want = _expected_resume(wire, len(img), at)
    assert out[0]["code"] == C.OK
    assert out[0]["resumed_from"] == want, (at, want, segments.boundaries(wire, 10))
    assert want > 0 or frac < 0.3


def test_plain_deflate_restarts_from_zero_after_reboot(mp_run: MpRun, tmp_path: Path) -> None:
    img = image(9, 100_000)
    wire = deflate_raw(img, 10)
    out = _run(mp_run, tmp_path, [(img, wire, C.COMP_DEFLATE)], reboot_at=len(wire) // 2)
    assert out[0]["code"] == C.OK and out[0]["resumed_from"] == 0


def test_segments_complete_and_bad_wires_fail(mp_run: MpRun, tmp_path: Path) -> None:
    img = image(10, 60_000)
    good = segments.encode(img, 10, 8192)
    bad_prefix = bytearray(good)
    bad_prefix[0:4] = (int.from_bytes(good[0:4], "little") + 7).to_bytes(4, "little")
    trailing = good + b"\x01\x00\x00\x00\x03"
    # a middle segment decoding to 5000 bytes (not a multiple of 4 KiB) is refused
    odd = b""
    for off in range(0, len(img), 5000):
        body = deflate_raw(img[off : off + 5000], 10)
        odd += len(body).to_bytes(4, "little") + body
    out = _run(
        mp_run, tmp_path,
        [(img, good, SEG), (img, bytes(bad_prefix), SEG), (img, trailing, SEG), (img, odd, SEG)],
    )  # fmt: skip
    assert [r["code"] for r in out] == [C.OK] + [C.E_DECOMPRESS] * 3
    assert all(r["caps_wbits"] == 10 for r in out)
