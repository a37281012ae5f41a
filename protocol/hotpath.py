# The protocol code a serving ECU keeps loaded (docs/protocol.md; heap notes in device/session.py).
#
# On the MicroPython unix port every loaded module's code and names live in the GC heap, so the
# device imports only this module (plus errors.py) while it serves a transfer; the
# full CBOR codec and message layer (cbor.py, messages.py) are imported for HELLO, STATUS_REQ and
# BEGIN only and dropped again. The host gets every name here through messages.py and
# transfer.py, which re-export them, so both ends still share one definition:
#   put_head(major, val, buf, pos) -> pos    one CBOR head, shortest form (cbor.py's encoder too)
#   DataView                                 DATA without allocating (messages.DataView)
#   ack_into(buf, pos, offset, window, phase) -> end                      (messages.ack_into)
#   parse_small(payload, out) -> type | -1   messages that are only uints, without the codec
#   RxWindow            (transfer.RxWindow) classify() -> transfer.ACCEPT/DUP/GAP/OUT_OF_WINDOW
#   FrameReader(max_payload)  frame.FrameParser without feed(): readinto_from(stream), next()
#   FrameWriter, encode_frame, frame                        (re-exported by frame.py)
# (Change: the framer moved here from frame.py so the device no longer loads frame.py: ~3 KB of
# GC heap on the unix port. frame.py's names and behaviour are unchanged.)
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
_E_BAD_MESSAGE = const(10)
_E_TOO_LARGE = const(13)
_MAX_PAYLOAD_ABS = const(8192)
_MIN_PAYLOAD = const(256)
_MSG_ABORT = const(0xE)
_MSG_ACK = const(0x5)
_MSG_ACTIVATE = const(0xA)
_MSG_DATA = const(0x4)
_MSG_END = const(0x8)
_MSG_ERROR = const(0xF)
_MSG_HELLO = const(0x1)
_MSG_STATUS_REQ = const(0x10)
_MSG_PROGRESS = const(0x7)
_MSG_RESULT = const(0x9)

_MAX_UINT = const(0xFFFFFFFF)
# Constants are private (const() folds them, no name is interned on the device); the public
# names with the same values are in messages.py / transfer.py (tests/protocol/test_wire.py).
_MAX_DATA = const(8176)  # _MAX_PAYLOAD_ABS - messages.DATA_OVERHEAD

_ACCEPT = const(0)  # offset == expected and inside the window: write it, advance
_DUP = const(1)  # offset < expected: already have it; drop, re-ACK expected
_GAP = const(2)  # expected < offset, inside the window: a frame was lost; drop, ACK expected
_OUT_OF_WINDOW = const(3)  # past offset + window (or past wire_len): ERROR E_OUT_OF_WINDOW

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


def ack_into(buf, pos, offset, window, phase):
    """Write an ACK payload into buf at pos without allocating; returns the end position."""
    if pos + 17 > len(buf):
        raise ProtocolError(_E_TOO_LARGE, pos)
    buf[pos] = 0x84
    buf[pos + 1] = _MSG_ACK
    pos = put_head(0, offset, buf, pos + 2)
    pos = put_head(0, window, buf, pos)
    return put_head(0, phase, buf, pos)


def parse_small(mv, out):
    """Parse a message made of uints only (END, ACTIVATE, REBOOT, CONFIRM, REVERT, ABORT, ERROR,
    ACK, PROGRESS, RESULT) or of uints and one 16-byte nonce (HELLO, STATUS_REQ: the nonce is a
    memoryview into mv) into out[0..] (a list of >= 4 items, reused); returns its type.

    Returns -1 for anything else, well-formed or not: messages.parse() then decodes it or
    raises the error it deserves, so both paths accept and reject exactly the same payloads.
    """
    end = len(mv)
    if end < 2:
        return -1
    n = mv[0] - 0x80
    t = mv[1]
    # fields after the type (-1: not one of these messages), and which one is the nonce
    nb = -1
    if t == _MSG_END:
        k = 1
    elif t == _MSG_HELLO:
        k = 3
        nb = 2
    elif t == _MSG_STATUS_REQ:
        k = 1
        nb = 1
    elif _MSG_ACTIVATE <= t <= _MSG_ABORT:
        k = 0
    elif t == _MSG_ERROR:
        k = 2
    elif t == _MSG_ACK or t == _MSG_PROGRESS or t == _MSG_RESULT:
        k = 3
    else:
        return -1
    if n != k + 1:
        return -1
    out[0] = t
    p = 2
    i = 1
    while i < n:
        # a shortest-form major-0 head; anything else goes to the full parser
        if p >= end:
            return -1
        v = mv[p]
        if i == nb:
            # the nonce: a bstr of exactly 16 bytes (head 0x50)
            if v != 0x50 or p + 17 > end:
                return -1
            out[i] = mv[p + 1 : p + 17]
            p += 17
            i += 1
            continue
        if v < 24:
            p += 1
        elif v == 24 and p + 2 <= end:
            v = mv[p + 1]
            p += 2
            if v < 24:
                return -1
        elif v == 25 and p + 3 <= end:
            v = (mv[p + 1] << 8) | mv[p + 2]
            p += 3
            if v < 0x100:
                return -1
        elif v == 26 and p + 5 <= end:
            v = (mv[p + 1] << 24) | (mv[p + 2] << 16) | (mv[p + 3] << 8) | mv[p + 4]
            p += 5
            if v < 0x10000:
                return -1
        else:
            return -1
        out[i] = v
        i += 1
    if t == _MSG_HELLO and out[3] < _MIN_PAYLOAD:
        return -1  # the full parser's bound on host_max_payload
    return t if p == end else -1


class DataView:
    """Zero-allocation DATA parser: parse(payload_mv) sets .offset and .data (a memoryview).

    Returns True for a DATA payload in the profile, False for any other message type (so the
    caller falls back to parse()), and raises ProtocolError for a malformed DATA payload.
    .data views payload_mv and is valid as long as payload_mv is. The view is cached and reused
    while (payload_mv, start, length) repeat, as they do for same-size frames of a transfer.
    """

    def __init__(self):
        self.offset = 0
        self.data = None
        self._src = None
        self._s = -1
        self._n = -1

    def parse(self, mv):
        end = len(mv)
        if end < 2 or mv[0] != 0x83 or mv[1] != _MSG_DATA:
            return False
        if end < 4:
            raise ProtocolError(_E_BAD_MESSAGE, end)
        # offset: major 0, shortest form
        ib = mv[2]
        p = 3
        if ib < 24:
            off = ib
        elif ib == 24:
            off = mv[3]
            p = 4
            if off < 24:
                raise ProtocolError(_E_BAD_MESSAGE, 2)
        elif ib == 25:
            if end < 5:
                raise ProtocolError(_E_BAD_MESSAGE, 2)
            off = (mv[3] << 8) | mv[4]
            p = 5
            if off < 0x100:
                raise ProtocolError(_E_BAD_MESSAGE, 2)
        elif ib == 26:
            if end < 7:
                raise ProtocolError(_E_BAD_MESSAGE, 2)
            off = (mv[3] << 24) | (mv[4] << 16) | (mv[5] << 8) | mv[6]
            p = 7
            if off < 0x10000:
                raise ProtocolError(_E_BAD_MESSAGE, 2)
        else:
            raise ProtocolError(_E_TOO_LARGE if ib == 27 else _E_BAD_MESSAGE, 2)
        # data: major 2, shortest form, 1..MAX_DATA bytes, exactly to the end of the payload
        if p >= end:
            raise ProtocolError(_E_BAD_MESSAGE, p)
        ib = mv[p]
        if ib < 0x40 or ib > 0x5B:
            raise ProtocolError(_E_BAD_MESSAGE, p)
        ai = ib & 31
        if ai < 24:
            n = ai
            p += 1
        elif ai == 24:
            if p + 2 > end:
                raise ProtocolError(_E_BAD_MESSAGE, p)
            n = mv[p + 1]
            p += 2
            if n < 24:
                raise ProtocolError(_E_BAD_MESSAGE, p)
        elif ai == 25:
            if p + 3 > end:
                raise ProtocolError(_E_BAD_MESSAGE, p)
            n = (mv[p + 1] << 8) | mv[p + 2]
            p += 3
            if n < 0x100:
                raise ProtocolError(_E_BAD_MESSAGE, p)
        else:
            raise ProtocolError(_E_TOO_LARGE if ai <= 27 else _E_BAD_MESSAGE, p)
        if n > _MAX_DATA:
            raise ProtocolError(_E_TOO_LARGE, p)
        if n == 0 or p + n != end:
            raise ProtocolError(_E_BAD_MESSAGE, p)
        self.offset = off
        if mv is not self._src or p != self._s or n != self._n:
            self.data = mv[p : p + n]
            self._src = mv
            self._s = p
            self._n = n
        return True


class RxWindow:
    """Device side: expected offset and window; classify() each DATA frame, accept() what was
    written. resume(offset) restarts at a durable offset."""

    def __init__(self, window, wire_len=0xFFFFFFFF, expected=0):
        self.window = window
        self.wire_len = wire_len
        self.expected = expected

    def resume(self, offset):
        self.expected = offset

    def classify(self, offset, n):
        exp = self.expected
        if offset < exp:
            return _DUP
        end = offset + n
        if n <= 0 or end > exp + self.window or end > self.wire_len:
            return _OUT_OF_WINDOW
        if offset > exp:
            return _GAP
        return _ACCEPT

    def accept(self, n):
        self.expected += n
        return self.expected


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
