# The protocol code a serving ECU keeps loaded (docs/protocol.md; heap notes in device/session.py).
#
# On the MicroPython unix port every loaded module's code and names live in the GC heap, so the
# device imports only this module (plus errors.py) while it serves a transfer; the
# full CBOR codec and message layer (cbor.py, messages.py) are imported for HELLO, STATUS_REQ and
# BEGIN only and dropped again. The host gets every name here through messages.py and
# transfer.py, which re-export them, so both ends still share one definition:
#   put_head(major, val, buf, pos) -> pos    one CBOR head, shortest form (cbor.py's encoder too)
#   FrameReader(max_payload)  frame.FrameParser without feed(): readinto_from(stream), next()
#   FrameWriter, encode_frame, frame                        (re-exported by frame.py)
# (Change: the framer moved here from frame.py so the device no longer loads frame.py: ~3 KB of
# GC heap on the unix port. frame.py's names and behaviour are unchanged.)
# (Change, issue 11: DataView, ack_into and RxWindow moved to datapath.py, the transfer's part,
# and parse_small / parse_app to small.py, loaded per request: an idle agent keeps only the
# framing here; hotpath.DataView, hotpath.parse_small etc. still work (__getattr__ below).)
import binascii
import sys

from otalink.protocol.errors import ProtocolError

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


# protocol/codes.py values this module uses, as private consts (folded by the compiler; codes.py
# itself is ~100 names the heap would keep; tests/protocol/test_wire.py checks the copies)
_DEFAULT_PAYLOAD = const(4096)
_E_TOO_LARGE = const(13)
_MAX_PAYLOAD_ABS = const(8192)
_MIN_PAYLOAD = const(256)

_MAX_UINT = const(0xFFFFFFFF)

_SOF0 = const(0xA5)  # framing (frame.py has the same)
_SOF1 = const(0x5A)
_HDR = const(6)
_OVH = const(10)
_SOF0_B = const(b"\xa5")
# MicroPython streams take readinto(buf, n); CPython ones (io, pyserial) only readinto(buf).
_MPY = sys.implementation.name == "micropython"


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
        raise ProtocolError(_E_TOO_LARGE, pos)
    buf[pos] = mt | 26
    buf[pos + 1] = val >> 24
    buf[pos + 2] = (val >> 16) & 0xFF
    buf[pos + 3] = (val >> 8) & 0xFF
    buf[pos + 4] = val & 0xFF
    return pos + 5


# ---- framing (docs/protocol.md "Frame"; frame.py's comment tells how the parser works) ----------
# The device's frame reader and writer. frame.FrameParser (the host's) is FrameReader plus feed():
# the device never loads frame.py, whose feed() path (RingIO compaction) only the host needs.
class FrameReader:
    def __init__(self, max_payload=_DEFAULT_PAYLOAD, slack=0):
        # slack: extra scratch bytes past the capacity, so that feed(chunk, n) with a reused
        # read buffer of up to `slack` bytes copies the whole object (no view, no allocation)
        # even when n < len(chunk). The capacity (what space() reports) is one maximum frame.
        if max_payload < 1 or max_payload > _MAX_PAYLOAD_ABS:
            raise ValueError("max_payload")
        self.max_payload = max_payload
        cap = max_payload + _OVH
        self._cap = cap
        self._size = cap + slack
        self._buf = bytearray(self._size)
        self._mv = memoryview(self._buf)
        self._start = 0  # first unconsumed byte
        self._end = 0  # one past the last byte fed
        # Cached views keyed by payload length (see module comment).
        self._crc_len = -1
        self._crc_view = None
        self._pay_len = -1
        self._pay_view = None
        # Cached write views for stream reads at the two usual positions (frame start, payload).
        self._w0 = self._mv
        self._w6 = self._mv[_HDR:]
        self.frames = 0
        self.crc_errors = 0
        self.frame_errors = 0
        self.dropped_bytes = 0

    def _compact(self):
        # Move the unconsumed bytes [start, end) to index 0.
        s = self._start
        if s == 0:
            return
        m = self._end - s
        if m:
            self._buf[0:m] = self._mv[s : s + m]  # one small view (rare on the device)
        self._start = 0
        self._end = m

    def _wanted(self):
        # Bytes still missing for the candidate at start (header, then whole frame); >= 1.
        s = self._start
        avail = self._end - s
        if avail < _HDR:
            return _HDR - avail
        b = self._buf
        ln = b[s + 2] | (b[s + 3] << 8)
        if b[s] != _SOF0 or b[s + 1] != _SOF1 or ln == 0 or ln > self.max_payload:
            # Garbage at the start: next() resynchronises; read in bulk meanwhile rather than
            # byte by byte (frames after it get moved to index 0 by next()).
            return self._cap - self._end
        need = ln + _OVH - avail
        return need if need > 0 else 0

    def readinto_from(self, stream, n=-1):
        """Read from stream straight into the buffer (MicroPython: readinto(buf, n); CPython:
        readinto(buf) on a sized view, e.g. io.BytesIO, pyserial).

        Reads at most the bytes still missing for the current frame (so frames stay at index 0
        and no compaction is needed), or n if smaller. Returns the count read (0 or None when the
        stream had nothing). Reads that land on the frame start or the payload start use cached
        views and allocate nothing; a partial read elsewhere allocates one small view.
        """
        if self._start == self._end:
            self._start = 0
            self._end = 0
        elif self._start:
            self._compact()
        want = self._wanted()
        if want <= 0:
            return 0  # a whole frame is already buffered: call next()
        if 0 <= n < want:
            want = n
        e = self._end
        if e == 0:
            view = self._w0
        elif e == _HDR:
            view = self._w6
        else:
            view = self._mv[e:]
        if _MPY:
            got = stream.readinto(view, want)
        else:
            got = stream.readinto(view[:want])
        if got:
            self._end = e + got
        return got

    # ---- output -----------------------------------------------------------------------------
    def next(self):
        """The payload of the next valid frame as a memoryview, or None if none is complete.

        The view is valid until the next call to feed(), readinto_from() or next().
        """
        b = self._buf
        while True:
            s = self._start
            e = self._end
            if s >= e:
                self._start = 0
                self._end = 0
                return None
            if b[s] != _SOF0:
                i = b.find(_SOF0_B, s, e)
                if i < 0:
                    i = e
                self.dropped_bytes += i - s
                self.frame_errors += 1
                self._start = i
                continue
            avail = e - s
            if avail < _HDR:
                if s + _HDR > self._cap:
                    self._compact()
                return None
            ln = b[s + 2] | (b[s + 3] << 8)
            nln = b[s + 4] | (b[s + 5] << 8)
            if b[s + 1] != _SOF1 or (ln ^ nln) != 0xFFFF or ln == 0 or ln > self.max_payload:
                self.frame_errors += 1
                self.dropped_bytes += 1
                self._start = s + 1
                continue
            total = ln + _OVH
            if avail < total:
                if s + total > self._cap:
                    self._compact()
                return None
            if s:
                self._compact()  # candidate to index 0: cached views stay valid
            if ln != self._crc_len:
                self._crc_view = self._mv[2 : _HDR + ln]
                self._crc_len = ln
            crc = binascii.crc32(self._crc_view) & 0xFFFFFFFF
            p = _HDR + ln
            got = b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24)
            if crc != got:
                self.crc_errors += 1
                self.dropped_bytes += 1
                self._start = 1
                continue
            if ln != self._pay_len:
                self._pay_view = self._mv[_HDR : _HDR + ln]
                self._pay_len = ln
            self.frames += 1
            self._start = total
            return self._pay_view


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


class FrameWriter:
    """Preallocated transmit buffer for the device: build a payload in place, then seal it.

    w = FrameWriter(256)
    uart.write(w.seal(messages.ack_into(w.buf, w.PAYLOAD, off, win, ph)))
    seal() allocates nothing once a payload length has been seen (views cached by length).
    """

    PAYLOAD = _HDR

    def __init__(self, max_payload=_MIN_PAYLOAD):
        self.buf = bytearray(max_payload + _OVH)
        self._mv = memoryview(self.buf)
        self.max_payload = max_payload
        self._len = -1
        self._crc_view = None
        self._frame_view = None

    def seal(self, end):
        """Payload occupies buf[PAYLOAD:end]; writes header + CRC, returns the frame's view."""
        ln = end - _HDR
        if ln <= 0 or ln > self.max_payload:
            raise ValueError("payload length")
        _put_header(self.buf, 0, ln)
        if ln != self._len:
            self._crc_view = self._mv[2:end]
            self._frame_view = self._mv[: end + 4]
            self._len = ln
        crc = binascii.crc32(self._crc_view) & 0xFFFFFFFF
        _put_crc(self.buf, end, crc)
        return self._frame_view


def __getattr__(name):
    # The transfer's shortcuts live in datapath.py (an idle agent keeps only this module);
    # hotpath.DataView / RxWindow / ack_into still find them.
    if name in ("DataView", "RxWindow", "ack_into"):
        from otalink.protocol import datapath

        return getattr(datapath, name)
    if name in ("parse_small", "parse_app"):
        from otalink.protocol import small

        return getattr(small, name)
    raise AttributeError(name)
