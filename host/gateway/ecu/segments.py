"""Resumable deflate segments: the host side of compression code ``COMP_DEFLATE_SEG`` (2).

Wire format (docs/device.md "Deflate segments"): the image is cut into consecutive pieces of
``segment_size`` uncompressed bytes (a multiple of 4 KiB; the last piece is the rest); each piece
is compressed on its own into a complete raw-deflate stream (RFC 1951, final block set, window
``2**wbits`` <= the device's ``deflate_wbits``) and sent as ``u32 LE compressed length`` followed
by those bytes. A device can then checkpoint at every segment end that falls on an erase-sector
boundary (durable wire offset + image offset) and resume there after a reboot, which a single
deflate stream does not allow (the decoder's state is lost with the process).

The device accepts it when its INFO caps flags carry ``CAP_DEFLATE_SEG`` (bit 0).
"""

from __future__ import annotations

import zlib

from otalink.host.errors import TransportError

COMP_DEFLATE_SEG = 2
CAP_DEFLATE_SEG = 1
SEGMENT_SIZE = 16384
_PREFIX = 4
_UNIT = 4096


class SegmentError(TransportError, ValueError):
    """A segmented wire that does not decode (bad prefix, bad stream, wrong segment size)."""

    code = "ecu_protocol.bad_segment"


def encode(image: bytes, wbits: int, segment_size: int = SEGMENT_SIZE, level: int = 9) -> bytes:
    """The segmented wire of ``image``: [u32 LE length][raw deflate] per ``segment_size`` bytes."""
    if not 9 <= wbits <= 15:
        raise ValueError("wbits must be 9..15")
    if segment_size <= 0 or segment_size % _UNIT:
        raise ValueError("segment_size must be a positive multiple of 4096")
    out = bytearray()
    for off in range(0, len(image), segment_size):
        co = zlib.compressobj(level, zlib.DEFLATED, -wbits)
        body = co.compress(image[off : off + segment_size]) + co.flush()
        out += len(body).to_bytes(_PREFIX, "little") + body
    return bytes(out)


def boundaries(wire: bytes, wbits: int = 15) -> list[tuple[int, int]]:
    """(wire offset, image offset) after every segment: where a device may resume."""
    out: list[tuple[int, int]] = []
    w = 0
    img = 0
    while w < len(wire):
        if w + _PREFIX > len(wire):
            raise SegmentError(f"cut prefix at {w}")
        n = int.from_bytes(wire[w : w + _PREFIX], "little")
        w += _PREFIX
        if n == 0 or w + n > len(wire):
            raise SegmentError(f"bad segment length {n} at {w - _PREFIX}")
        d = zlib.decompressobj(-wbits)
        piece = d.decompress(wire[w : w + n])
        if not d.eof or d.unused_data:
            raise SegmentError(f"segment at {w - _PREFIX} is not one complete stream")
        w += n
        img += len(piece)
        out.append((w, img))
    return out


def decode(wire: bytes, wbits: int = 15) -> bytes:
    """The image back from a segmented wire (a test oracle; checks the segment structure)."""
    out = bytearray()
    w = 0
    for end, img in boundaries(wire, wbits):
        n = int.from_bytes(wire[w : w + _PREFIX], "little")
        out += zlib.decompress(wire[w + _PREFIX : w + _PREFIX + n], -wbits)
        if len(out) != img:
            raise SegmentError("segment length")
        w = end
    return bytes(out)
