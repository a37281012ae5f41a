# Window bookkeeping shared by both ends (docs/protocol.md, "Flow control").
# Change: RxWindow is defined in hotpath.py (same name here).
#
# The device owns the offset: it grants [expected, expected + window) in every ACK, and a resumed
# transfer restarts at the offset the device reports. TxWindow (host) decides what to send next
# from the ACKs; RxWindow (device) classifies each DATA frame with integer compares only
# (no allocation on the per-frame path).
from otalink.protocol import codes
from otalink.protocol.errors import ProtocolError

# The device's half lives in hotpath.py (what a serving ECU keeps loaded); re-exported here.
from otalink.protocol.hotpath import RxWindow  # noqa: F401

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


# RxWindow.classify() results (hotpath.py holds private copies; tests/protocol/test_wire.py)
ACCEPT = const(0)  # offset == expected and inside the window: write it, advance
DUP = const(1)  # offset < expected: already have it; drop, re-ACK expected
GAP = const(2)  # expected < offset, inside the window: a frame was lost; drop, ACK expected
OUT_OF_WINDOW = const(3)  # past offset + window (or past wire_len): ERROR E_OUT_OF_WINDOW


class TxWindow:
    """Host side: which wire bytes to send next.

    next_range() returns (offset, n) and counts those bytes as sent, or None when the window is
    closed or everything has been sent. Feed every ACK to on_ack(offset, window). A repeated ACK
    offset while later bytes are in flight means the device saw a gap: the host goes back to it
    (go-back-N), ignoring the stale duplicate ACKs of frames already in flight. on_timeout()
    goes back to the last acknowledged offset; resume() restarts at a device-reported offset.
    """

    def __init__(self, wire_len, chunk, offset=0, window=0):
        if chunk <= 0:
            raise ValueError("chunk")
        self.wire_len = wire_len
        self.chunk = chunk
        self.acked = offset  # device's expected offset (from the last ACK)
        self.window = window  # bytes the device accepts past acked
        self.next_offset = offset  # next byte to send
        self.in_flight = 0  # DATA frames sent and not yet ACKed
        self.rewinds = 0
        self._ignore = 0  # stale duplicate ACKs still expected after a rewind

    @property
    def done(self):
        return self.acked >= self.wire_len

    def resume(self, offset, window):
        """Restart at the device's offset (an ACK answering BEGIN, or after reconnect)."""
        if offset < 0 or offset > self.wire_len:
            raise ProtocolError(codes.E_BAD_OFFSET, offset if offset > 0 else 0)
        self.acked = offset
        self.window = window
        self.next_offset = offset
        self.in_flight = 0
        self._ignore = 0

    def on_ack(self, offset, window):
        """Account one ACK. Returns True if it made the host go back (a retransmission).
        An offset past wire_len is ProtocolError(E_BAD_OFFSET): the device is confused."""
        if offset < 0 or offset > self.wire_len:
            raise ProtocolError(codes.E_BAD_OFFSET, offset if offset > 0 else 0)
        if self.in_flight:
            self.in_flight -= 1
        self.window = window
        if offset > self.acked:
            self.acked = offset
            if self.next_offset < offset:
                self.next_offset = offset
            return False
        if offset < self.acked:
            # The device went back (it restarted from its durable offset): it owns the offset.
            self.acked = offset
            self._rewind()
            return True
        # Same offset again.
        if self.next_offset <= offset:
            return False  # nothing beyond it was sent: plain window update
        if self._ignore:
            self._ignore -= 1
            return False
        self._rewind()
        return True

    def _rewind(self):
        self.next_offset = self.acked
        self._ignore = self.in_flight  # their ACKs will repeat this offset
        self.rewinds += 1

    def on_timeout(self):
        """No ACK in time: go back to the last acknowledged offset, nothing is in flight."""
        self.next_offset = self.acked
        self.in_flight = 0
        self._ignore = 0
        self.rewinds += 1

    def next_range(self):
        off = self.next_offset
        if off >= self.wire_len:
            return None
        limit = self.acked + self.window
        if off >= limit:
            return None
        n = self.chunk
        if off + n > self.wire_len:
            n = self.wire_len - off
        if off + n > limit:
            n = limit - off
        self.next_offset = off + n
        self.in_flight += 1
        return (off, n)
