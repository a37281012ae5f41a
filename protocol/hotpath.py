# The protocol code a serving ECU keeps loaded (docs/protocol.md; heap notes in device/session.py).
#
# On the MicroPython unix port every loaded module's code and names live in the GC heap, so the
# device imports only this module (plus codes, errors and frame) while it serves a transfer; the
# full CBOR codec and message layer (cbor.py, messages.py) are imported for HELLO, STATUS_REQ and
# BEGIN only and dropped again. The host gets every name here through messages.py and
# transfer.py, which re-export them, so both ends still share one definition:
#   put_head(major, val, buf, pos) -> pos    one CBOR head, shortest form (cbor.py's encoder too)
#   DataView                                 DATA without allocating (messages.DataView)
#   ack_into(buf, pos, offset, window, phase) -> end                      (messages.ack_into)
#   parse_small(payload, out) -> type | -1   messages that are only uints, without the codec
#   RxWindow            (transfer.RxWindow) classify() -> transfer.ACCEPT/DUP/GAP/OUT_OF_WINDOW
from otalink.protocol import codes
from otalink.protocol.errors import ProtocolError

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_MAX_UINT = const(0xFFFFFFFF)
# Constants are private (const() folds them, no name is interned on the device); the public
# names with the same values are in messages.py / transfer.py (tests/protocol/test_wire.py).
_MAX_DATA = const(8176)  # codes.MAX_PAYLOAD_ABS - messages.DATA_OVERHEAD

_ACCEPT = const(0)  # offset == expected and inside the window: write it, advance
_DUP = const(1)  # offset < expected: already have it; drop, re-ACK expected
_GAP = const(2)  # expected < offset, inside the window: a frame was lost; drop, ACK expected
_OUT_OF_WINDOW = const(3)  # past offset + window (or past wire_len): ERROR E_OUT_OF_WINDOW

_E_BAD = codes.E_BAD_MESSAGE
_E_BIG = codes.E_TOO_LARGE


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
        raise ProtocolError(_E_BIG, pos)
    buf[pos] = mt | 26
    buf[pos + 1] = val >> 24
    buf[pos + 2] = (val >> 16) & 0xFF
    buf[pos + 3] = (val >> 8) & 0xFF
    buf[pos + 4] = val & 0xFF
    return pos + 5


def ack_into(buf, pos, offset, window, phase):
    """Write an ACK payload into buf at pos without allocating; returns the end position."""
    if pos + 17 > len(buf):
        raise ProtocolError(_E_BIG, pos)
    buf[pos] = 0x84
    buf[pos + 1] = codes.MSG_ACK
    pos = put_head(0, offset, buf, pos + 2)
    pos = put_head(0, window, buf, pos)
    return put_head(0, phase, buf, pos)


def parse_small(mv, out):
    """Parse a message made of uints only (END, ACTIVATE, REBOOT, CONFIRM, REVERT, ABORT, ERROR,
    ACK, PROGRESS, RESULT) into out[0..] (a list of >= 4 items, reused); returns its type.

    Returns -1 for anything else, well-formed or not: messages.parse() then decodes it or
    raises the error it deserves, so both paths accept and reject exactly the same payloads.
    """
    end = len(mv)
    if end < 2:
        return -1
    n = mv[0] - 0x80
    t = mv[1]
    # fields after the type of the messages made of uints only (-1: not one of them)
    if t == codes.MSG_END:
        k = 1
    elif codes.MSG_ACTIVATE <= t <= codes.MSG_ABORT:
        k = 0
    elif t == codes.MSG_ERROR:
        k = 2
    elif t == codes.MSG_ACK or t == codes.MSG_PROGRESS or t == codes.MSG_RESULT:
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
        if end < 2 or mv[0] != 0x83 or mv[1] != codes.MSG_DATA:
            return False
        if end < 4:
            raise ProtocolError(_E_BAD, end)
        # offset: major 0, shortest form
        ib = mv[2]
        p = 3
        if ib < 24:
            off = ib
        elif ib == 24:
            off = mv[3]
            p = 4
            if off < 24:
                raise ProtocolError(_E_BAD, 2)
        elif ib == 25:
            if end < 5:
                raise ProtocolError(_E_BAD, 2)
            off = (mv[3] << 8) | mv[4]
            p = 5
            if off < 0x100:
                raise ProtocolError(_E_BAD, 2)
        elif ib == 26:
            if end < 7:
                raise ProtocolError(_E_BAD, 2)
            off = (mv[3] << 24) | (mv[4] << 16) | (mv[5] << 8) | mv[6]
            p = 7
            if off < 0x10000:
                raise ProtocolError(_E_BAD, 2)
        else:
            raise ProtocolError(_E_BIG if ib == 27 else _E_BAD, 2)
        # data: major 2, shortest form, 1..MAX_DATA bytes, exactly to the end of the payload
        if p >= end:
            raise ProtocolError(_E_BAD, p)
        ib = mv[p]
        if ib < 0x40 or ib > 0x5B:
            raise ProtocolError(_E_BAD, p)
        ai = ib & 31
        if ai < 24:
            n = ai
            p += 1
        elif ai == 24:
            if p + 2 > end:
                raise ProtocolError(_E_BAD, p)
            n = mv[p + 1]
            p += 2
            if n < 24:
                raise ProtocolError(_E_BAD, p)
        elif ai == 25:
            if p + 3 > end:
                raise ProtocolError(_E_BAD, p)
            n = (mv[p + 1] << 8) | mv[p + 2]
            p += 3
            if n < 0x100:
                raise ProtocolError(_E_BAD, p)
        else:
            raise ProtocolError(_E_BIG if ai <= 27 else _E_BAD, p)
        if n > _MAX_DATA:
            raise ProtocolError(_E_BIG, p)
        if n == 0 or p + n != end:
            raise ProtocolError(_E_BAD, p)
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
