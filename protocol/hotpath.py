# The protocol code a serving ECU keeps loaded (docs/protocol.md; heap notes in device/session.py).
#
# On the MicroPython unix port every loaded module's code and names live in the GC heap, so the
# device imports only this module (plus errors.py) while it serves a transfer; the
# full CBOR codec and message layer (cbor.py, messages.py) are imported for HELLO, STATUS_REQ and
# BEGIN only and dropped again. The host gets every name here through messages.py and
# transfer.py, which re-export them, so both ends still share one definition:
#   put_head(major, val, buf, pos) -> pos    one CBOR head, shortest form (cbor.py's encoder too)
#   encode_frame, frame                                     (re-exported by frame.py)
#   FrameReader, FrameWriter: framing.py (the engine's), still found here
# (Change: the framer moved here from frame.py so the device no longer loads frame.py: ~3 KB of
# GC heap on the unix port. frame.py's names and behaviour are unchanged.)
# (Change, issue 11: DataView, ack_into and RxWindow moved to datapath.py, the transfer's part,
# and parse_small / parse_app to small.py, loaded per request; FrameReader and FrameWriter moved
# to framing.py, the engine's: an agent at rest keeps only put_head and frame() here for its
# application's events. hotpath.DataView, hotpath.parse_small, hotpath.FrameReader etc. still
# work (__getattr__ below).)
import binascii

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


# protocol/codes.py values this module uses, as private consts (folded by the compiler; codes.py
# itself is ~100 names the heap would keep; tests/protocol/test_wire.py checks the copies)
_E_TOO_LARGE = const(13)
_MAX_PAYLOAD_ABS = const(8192)

_MAX_UINT = const(0xFFFFFFFF)

_SOF0 = const(0xA5)  # framing (frame.py has the same)
_SOF1 = const(0x5A)
_HDR = const(6)
_OVH = const(10)


def put_head(major, val, buf, pos):
    """Write one CBOR head in shortest form at pos (the caller checked the room); values over
    2**32-1 raise E_TOO_LARGE. Returns the new position."""
    mt = major << 5
    if val < 24:
        buf[pos] = mt | val
        return pos + 1
    if val < 0x100:
        buf[pos] = mt | 24
        buf[pos + 1] = val
        return pos + 2
    if val < 0x10000:
        buf[pos] = mt | 25
        buf[pos + 1] = val >> 8
        buf[pos + 2] = val & 0xFF
        return pos + 3
    if val > _MAX_UINT:
        from otalink.protocol.errors import ProtocolError  # (rare: not kept loaded for it)

        raise ProtocolError(_E_TOO_LARGE, pos)
    buf[pos] = mt | 26
    buf[pos + 1] = val >> 24
    buf[pos + 2] = (val >> 16) & 0xFF
    buf[pos + 3] = (val >> 8) & 0xFF
    buf[pos + 4] = val & 0xFF
    return pos + 5


# ---- framing (docs/protocol.md "Frame"; frame.py's comment tells how the parser works) ----------
# One frame made whole (the application's events, DEFER, a report): encode_frame / frame. The
# engine's preallocated reader and writer are framing.py (an agent at rest holds neither).
def _put_header(out, pos, ln):
    out[pos] = _SOF0
    out[pos + 1] = _SOF1
    out[pos + 2] = ln & 0xFF
    out[pos + 3] = ln >> 8
    nln = ln ^ 0xFFFF
    out[pos + 4] = nln & 0xFF
    out[pos + 5] = nln >> 8


def _put_crc(out, p, crc):
    out[p] = crc & 0xFF
    out[p + 1] = (crc >> 8) & 0xFF
    out[p + 2] = (crc >> 16) & 0xFF
    out[p + 3] = (crc >> 24) & 0xFF


def encode_frame(payload, out, pos=0):
    """Write one frame carrying payload into out at pos; returns the end position."""
    ln = len(payload)
    if ln == 0 or ln > _MAX_PAYLOAD_ABS:
        raise ValueError("payload length")
    end = pos + ln + _OVH
    if end > len(out):
        raise ValueError("out too small")
    _put_header(out, pos, ln)
    out[pos + _HDR : pos + _HDR + ln] = payload
    mv = out if isinstance(out, memoryview) else memoryview(out)
    crc = binascii.crc32(mv[pos + 2 : pos + _HDR + ln]) & 0xFFFFFFFF
    _put_crc(out, pos + _HDR + ln, crc)
    return end


def frame(payload):
    """One frame as bytes."""
    out = bytearray(len(payload) + _OVH)
    encode_frame(payload, out, 0)
    return bytes(out)


def __getattr__(name):
    # The transfer's shortcuts live in datapath.py (an idle agent keeps only this module);
    # hotpath.DataView / RxWindow / ack_into still find them.
    if name in ("DataView", "RxWindow", "ack_into"):
        from otalink.protocol import datapath

        return getattr(datapath, name)
    if name in ("FrameReader", "FrameWriter"):
        from otalink.protocol import framing

        return getattr(framing, name)
    if name in ("parse_small", "parse_app"):
        from otalink.protocol import small

        return getattr(small, name)
    raise AttributeError(name)
