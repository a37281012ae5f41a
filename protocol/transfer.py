# Window bookkeeping of both ends (docs/protocol.md, "Flow control"): the one transfer engine.
#
# The device owns the offset: it grants [expected, expected + window) in every ACK, and a resumed
# transfer restarts at the offset the device reports. RxWindow (device, defined in datapath.py,
# the module a receiving ECU keeps loaded) classifies each DATA frame with integer compares only.
# TxWindow (host) is the sender's engine, sans-I/O: the caller feeds it what happened (BEGIN sent,
# ACKs, window errors, silence) with the time ``now`` (seconds, any monotonic clock) and asks it
# what to send next; it never reads a clock, sleeps or touches a line, so every behaviour is a
# table of events in and frames out (tests/protocol/test_transfer.py). The host's uploader
# (host/gateway/ecu/uploader.py), the benches and `otalink flash` all drive this one engine.
# It runs on MicroPython too (the device tests import this module; the serving agent does not).
from otalink.protocol import codes

# The device's half lives in datapath.py (what a receiving ECU keeps loaded); re-exported here.
from otalink.protocol.datapath import RxWindow  # noqa: F401
from otalink.protocol.errors import ProtocolError

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


# RxWindow.classify() results (datapath.py holds private copies; tests/protocol/test_wire.py)
ACCEPT = const(0)  # offset == expected and inside the window: write it, advance
DUP = const(1)  # offset < expected: already have it; drop, re-ACK expected
GAP = const(2)  # expected < offset, inside the window: a frame was lost; drop, ACK expected
OUT_OF_WINDOW = const(3)  # past offset + window (or past wire_len): ERROR E_OUT_OF_WINDOW

# TxWindow.on_timeout() results
RESEND = const(4)  # go back to the last ACKed offset: flush the line (flush_bytes zeros), resend
RECOVER = const(5)  # BEGIN unanswered or the device silent too long: re-open the session, BEGIN

DATA_OVERHEAD = const(16)  # bound on a DATA payload's CBOR bytes around its data (messages.py)
MIN_CHUNK = const(64)  # frames never shrink below this (a smaller caller chunk stays as it is)
GROW_AFTER = const(8)  # clean ACKs before a shrunk frame size doubles again
MIN_RTO = 0.1  # s; ACKs normally follow DATA within milliseconds (a float: no const())
_NO_CWND = const(1 << 30)  # congestion window before the first loss: the device's window rules
_PRUNE = const(64)  # send times kept before the acknowledged ones are pruned


class TxWindow:
    """Host side: the sender's engine of one stream (go-back-N inside the device's window).

    Per attempt: start(now, guess, window) when BEGIN is written (the first window may go out on
    the guess: INFO's durable offset), on_begin_ack() with BEGIN's ACK, then next_range(now)
    until None and one on_ack() per ACK; deadline(now) says until when to wait for the next
    frame and on_timeout(now) what silence means (RESEND or RECOVER); overdue(now) is True when
    the attempt must be given up (BEGIN's first-data timeout, or no advance for stall_timeout).

    Go-back: a repeated ACK offset while later bytes are in flight means the device dropped a
    frame (a gap): the host goes back to it and ignores the repeats of the frames already in
    flight; a repeat answering a frame the device already had (resent after a timeout while the
    first copy was only late) is no loss; an ACK offset lower than the acknowledged one means
    the device went back (it owns the offset). Each go-back halves the frame size (clean ACKs
    grow it back) and a reported loss halves a congestion window, so a lossy line carries small
    frames and a clean one full ones. The retransmit timer is RFC 6298's (srtt, rttvar,
    rto = srtt + 4 rttvar, floor MIN_RTO, ceiling reply_timeout, doubled per timeout), sampled
    from the latest send of the frame an ACK names (after a go-back too: heavy loss would
    otherwise leave it unsampled).
    """

    def __init__(
        self,
        wire_len,
        chunk,
        reply_timeout=codes.T_REPLY_MS / 1000,
        first_timeout=codes.T_FIRST_DATA_MS / 1000,
        stall_timeout=60.0,
        byte_time=0.0,
    ):
        if chunk <= 0 or wire_len < 0:
            raise ValueError("chunk")
        self.wire_len = wire_len
        self.max_chunk = chunk
        self.min_chunk = min(MIN_CHUNK, chunk)
        self.reply_timeout = reply_timeout
        self.first_timeout = first_timeout
        self.stall_timeout = stall_timeout
        self.byte_time = byte_time  # s per byte on the line (10 / baud), 0 when unknown
        self.chunk = chunk
        self.cwnd = _NO_CWND
        self.acked = 0  # the device's expected offset, from the last ACK
        self.acked_max = 0  # the highest offset ever acknowledged (progress across attempts)
        self.window_end = 0  # the device's grant: offset + window of the last ACK
        self.next_offset = 0  # the next byte to send
        self.sent_max = 0  # past every byte sent once (what is below it is a retransmission)
        self.in_flight = 0  # frames sent since the last go-back whose ACK is still due
        self._ends = []  # their end offsets, oldest first (the device ACKs frames in order)
        self.stale = 0  # ACKs still due for frames sent before the last go-back
        self.clean = 0
        self.frames = 0
        self.retransmitted = 0
        self.rewinds = 0
        self.timeouts = 0
        self.max_frame = chunk + DATA_OVERHEAD  # largest DATA payload since the last timeout
        self.flush_bytes = 0  # zeros to write before resending (on_timeout -> RESEND)
        self.resumed_from = -1  # the offset the first BEGIN's ACK named
        self.rewound_to = -1
        self.rewound_at = 0.0
        self.begun = False
        self.begin_at = 0.0
        self.heard_at = 0.0
        self.advanced_at = 0.0
        self.srtt = 0.0
        self.rttvar = 0.0
        self.rto = self.base_rto = reply_timeout
        self._sent_at = {}  # frame end offset -> time of its latest send

    @property
    def done(self):
        return self.begun and self.acked >= self.wire_len

    @property
    def limit(self):
        """Send no byte at or past this offset (the device's grant, the congestion window)."""
        return min(self.window_end, self.acked + self.cwnd)

    def start(self, now, offset=0, window=0):
        """BEGIN was written at ``now``. ``offset`` / ``window``: where the first window goes
        out before BEGIN's ACK (INFO's durable offset and window; 0 sends nothing). Frame size
        and congestion window carry over from earlier attempts; the RTT estimate restarts."""
        if offset < 0 or offset > self.wire_len:
            offset = 0
        self.acked = offset
        if offset > self.acked_max:
            self.acked_max = offset
        self.next_offset = offset
        self.window_end = offset + window
        self.in_flight = 0
        self._ends = []
        self.stale = 0
        self.begun = False
        self.begin_at = self.heard_at = self.advanced_at = now
        self.srtt = self.rttvar = 0.0
        self.timeouts = 0
        self._sent_at = {}
        # Until an RTT is measured: the time to carry one window, plus a margin.
        carry = window * self.byte_time
        rto = max(4 * MIN_RTO, 2 * carry + MIN_RTO)
        self.rto = self.base_rto = min(self.reply_timeout, rto)

    def next_range(self, now):
        """The next (offset, n) to send, counted as sent at ``now``; None while the window is
        closed or everything is sent."""
        off = self.next_offset
        lim = self.limit
        if off >= self.wire_len or off >= lim:
            return None
        n = min(self.chunk, self.wire_len - off, lim - off)
        if off < self.sent_max:
            self.retransmitted += min(n, self.sent_max - off)
        self._sent_at[off + n] = now
        self.frames += 1
        self.in_flight += 1
        self._ends.append(off + n)
        if n + DATA_OVERHEAD > self.max_frame:
            self.max_frame = n + DATA_OVERHEAD
        off += n
        self.next_offset = off
        if off > self.sent_max:
            self.sent_max = off
        return (off - n, n)

    def _check(self, offset):
        if offset < 0 or offset > self.wire_len:
            raise ProtocolError(codes.E_BAD_OFFSET, offset if 0 < offset <= 0xFFFFFFFF else 0)

    def on_begin_ack(self, offset, window, now):
        """BEGIN's ACK: the device's offset (a resume when > 0) and window. Frames sent on a
        wrong guess are stale: their ACKs repeat this offset. ProtocolError(E_BAD_OFFSET) for an
        offset past the stream."""
        self._check(offset)
        self.heard_at = self.advanced_at = now
        self.begun = True
        if self.resumed_from < 0:
            self.resumed_from = offset
        guessed = self.acked
        self.acked = offset
        if offset > self.acked_max:
            self.acked_max = offset
        self.window_end = offset + window
        if offset != guessed:
            self.next_offset = offset
            self.stale = self.in_flight
            self.in_flight = 0
            self._ends = []

    def on_ack(self, offset, window, now):
        """Account one ACK; True if it made the host go back. ProtocolError(E_BAD_OFFSET) for
        an offset past the stream: the device is confused."""
        self._check(offset)
        self.heard_at = now
        sent = self._sent_at.pop(offset, None)
        if sent is not None:
            self._sample(now - sent)
        was_stale = self.stale > 0
        end = -1  # the end of the frame this ACK answers (-1: not known)
        if was_stale:
            self.stale -= 1
        elif self._ends:
            end = self._ends.pop(0)
            self.in_flight -= 1
        self.window_end = offset + window
        if offset > self.acked:
            self.advanced_at = now
            self.rto = self.base_rto  # the line is alive: drop any timeout back-off
            if len(self._sent_at) > _PRUNE:
                for end in [e for e in self._sent_at if e <= offset]:
                    del self._sent_at[end]
            self.acked = offset
            if offset > self.acked_max:
                self.acked_max = offset
            if self.next_offset < offset:
                self.next_offset = offset
            self.clean += 1
            if self.cwnd < _NO_CWND:
                self.cwnd += self.chunk
            if self.clean >= GROW_AFTER and self.chunk < self.max_chunk:
                self.chunk = min(self.max_chunk, self.chunk * 2)
                self.clean = 0
            return False
        if offset < self.acked:
            # The device went back (it owns the offset): every frame in flight answers this.
            self.acked = offset
            self._rewind(offset, self.in_flight, False, now)
            return True
        if was_stale or self.next_offset <= offset:
            return False  # an echo of frames sent before a go-back, or a plain window update
        if 0 <= end <= offset:
            # The device already had the frame this ACK answers: a duplicate (a frame resent
            # after a timeout whose first copy was only late), not a loss.
            return False
        # A gap ACK: the frame at ``offset`` was lost (it will never be ACKed); every other frame
        # in flight answers with this same offset. Repeats of the offset just gone back to,
        # within a round trip, are echoes of that loss.
        echo = 2 * self.srtt if 2 * self.srtt > MIN_RTO else MIN_RTO
        if offset == self.rewound_to and now - self.rewound_at < echo:
            return False
        self._rewind(offset, self.in_flight - 1, True, now)
        return True

    def on_window_error(self, now):
        """ERROR E_OUT_OF_WINDOW / E_BAD_OFFSET answering DATA: back to the last ACKed offset."""
        self.heard_at = now
        self._rewind(self.acked, self.in_flight, True, now)

    def heard(self, now):
        """Any other frame from the device (PROGRESS, a late reply): the line is alive."""
        self.heard_at = now

    def deadline(self, now):
        """Until when to wait for the next frame before on_timeout() (same clock as ``now``).
        Before BEGIN's ACK: the reply timeout from the last frame heard (each PROGRESS of the
        slot erase restarts it), never past the first-data timeout."""
        if self.begun:
            return now + self.rto
        return min(now + self.reply_timeout, self.begin_at + self.first_timeout)

    def on_timeout(self, now):
        """Nothing arrived by deadline(): RESEND (gone back to the last ACKed offset; first
        write ``flush_bytes`` zero bytes: they complete any partial frame the device's parser
        still waits for, and zeros never start a frame) or RECOVER (BEGIN unanswered, or the
        device silent for twice the reply timeout)."""
        self.timeouts += 1
        if not self.begun or now - self.heard_at >= 2 * self.reply_timeout:
            return RECOVER
        # Frames may only be delayed (a stall): their ACKs are still due, so no loss is counted.
        self._rewind(self.acked, self.in_flight, False, now)
        self.flush_bytes = self.max_frame + codes.FRAME_OVERHEAD
        self.max_frame = 0
        self.rto = min(self.reply_timeout, self.rto * 2)
        return RESEND

    def overdue(self, now):
        """True when this attempt must end: BEGIN's ACK not within first_timeout, or the offset
        not advanced for stall_timeout (a peer that talks without progress)."""
        if not self.begun:
            return now - self.begin_at > self.first_timeout
        return now - self.advanced_at > self.stall_timeout

    def _sample(self, r):
        # RFC 6298 section 2: the first sample sets srtt = R, rttvar = R / 2.
        if self.srtt <= 0:
            self.srtt = r
            self.rttvar = r / 2
        else:
            d = self.srtt - r
            self.rttvar = 0.75 * self.rttvar + 0.25 * (d if d >= 0 else -d)
            self.srtt = 0.875 * self.srtt + 0.125 * r
        rto = self.srtt + 4 * self.rttvar
        self.base_rto = min(self.reply_timeout, rto if rto > MIN_RTO else MIN_RTO)

    def _rewind(self, offset, stale, loss, now):
        """Go back to ``offset``; ``stale`` ACKs are still due for frames sent before.

        Every go-back halves the frame size (a frame that keeps being hit must get smaller to
        get through); ``loss`` (a gap the device reported) also halves the congestion window,
        since on a lossy line each loss costs what is in flight; a timeout does not, it may be
        a stall that only delays frames."""
        self.rewinds += 1
        in_flight_bytes = self.next_offset - offset
        self.next_offset = offset
        self.stale = stale if stale > 0 else 0
        self.in_flight = 0
        self._ends = []
        self.clean = 0
        half = self.chunk // 2
        self.chunk = half if half > self.min_chunk else self.min_chunk
        if loss:
            self.rewound_to = offset
            self.rewound_at = now
            c = self.cwnd if self.cwnd < in_flight_bytes else in_flight_bytes
            self.cwnd = max(2 * self.chunk, c // 2)
