# The transfer's part of the protocol code a device keeps loaded while it receives an update
# (docs/protocol.md; device/session.py loads it at BEGIN and the agent drops it after the
# transfer): the zero-allocation DATA parser, the ACK encoder and the receive window. The host
# gets the same names through messages.py / transfer.py (and hotpath.py, which forwards them).
#   DataView                                 DATA without allocating (messages.DataView)
#   ack_into(buf, pos, offset, window, phase) -> end                      (messages.ack_into)
#   RxWindow            (transfer.RxWindow) classify() -> transfer.ACCEPT/DUP/GAP/OUT_OF_WINDOW
from otalink.protocol.errors import ProtocolError
from otalink.protocol.hotpath import put_head

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


# protocol/codes.py values this module uses, as private consts (tests/protocol/test_wire.py)
_E_TOO_LARGE = const(13)
_MSG_ACK = const(0x5)
_MSG_DATA = const(0x4)
# Constants are private (const() folds them, no name is interned on the device); the public
# names with the same values are in messages.py / transfer.py (tests/protocol/test_wire.py).
_MAX_DATA = const(8176)  # _MAX_PAYLOAD_ABS - messages.DATA_OVERHEAD

_ACCEPT = const(0)  # offset == expected and inside the window: write it, advance
_DUP = const(1)  # offset < expected: already have it; drop, re-ACK expected
_GAP = const(2)  # expected < offset, inside the window: a frame was lost; drop, ACK expected
_OUT_OF_WINDOW = const(3)  # past offset + window (or past wire_len): ERROR E_OUT_OF_WINDOW


def ack_into(buf, pos, offset, window, phase):
    """Write an ACK payload into buf at pos without allocating; returns the end position."""
    if pos + 17 > len(buf):
        raise ProtocolError(_E_TOO_LARGE, pos)
    buf[pos] = 0x84
    buf[pos + 1] = _MSG_ACK
    pos = put_head(0, offset, buf, pos + 2)
    pos = put_head(0, window, buf, pos)
    return put_head(0, phase, buf, pos)


class DataView:
    """Zero-allocation DATA parser: parse(payload_mv) sets .offset and .data (a memoryview).

    Returns True for a DATA payload in the profile, False for anything else: other message
    types and malformed DATA alike, so the caller falls back to parse(), which decodes the
    payload or raises the error it deserves. Both paths then answer every payload with one code
    (docs/protocol.md section 3 orders the checks). A malformed DATA comes only from a broken
    host: loading the codec for it is off the hot path (it fits a 64k agent mid-transfer,
    tests/protocol/test_cbor.py).
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
            return False
        # offset: major 0, shortest form
        ib = mv[2]
        p = 3
        if ib < 24:
            off = ib
        elif ib == 24:
            off = mv[3]
            p = 4
            if off < 24:
                return False
        elif ib == 25:
            if end < 5:
                return False
            off = (mv[3] << 8) | mv[4]
            p = 5
            if off < 0x100:
                return False
        elif ib == 26:
            if end < 7:
                return False
            off = (mv[3] << 24) | (mv[4] << 16) | (mv[5] << 8) | mv[6]
            p = 7
            if off < 0x10000:
                return False
        else:
            return False
        # data: major 2, shortest form, 1..MAX_DATA bytes, exactly to the end of the payload
        if p >= end:
            return False
        ib = mv[p]
        if ib < 0x40 or ib > 0x5B:
            return False
        ai = ib & 31
        if ai < 24:
            n = ai
            p += 1
        elif ai == 24:
            if p + 2 > end:
                return False
            n = mv[p + 1]
            p += 2
            if n < 24:
                return False
        elif ai == 25:
            if p + 3 > end:
                return False
            n = (mv[p + 1] << 8) | mv[p + 2]
            p += 3
            if n < 0x100:
                return False
        else:
            return False
        if n > _MAX_DATA:
            return False
        if n == 0 or p + n != end:
            return False
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
