# The device engine's framing (docs/protocol.md "Frame"): a preallocated reader and writer.
#   FrameReader(max_payload, slack=0)  .readinto_from(stream, n) -> count   .next() -> payload view
#                                      .buffered() -> bytes held that no frame consumed yet
#   FrameWriter(max_payload)           .buf, .PAYLOAD: build a payload in place; .seal(end) -> view
# frame.FrameParser (the host's) is FrameReader plus feed(); the device never loads frame.py,
# whose feed() path only the host needs. The agent loads this module with its engine
# (device/engine.py) when the line wakes it and drops it when it rests (an idle agent holds no
# reader, no max_payload buffer, no reply writer); hotpath.FrameReader / FrameWriter are these
# classes (hotpath.__getattr__).
import binascii
import sys

from otalink.protocol.hotpath import _put_crc, _put_header

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


# (hotpath.py has the same framing constants; tests/protocol/test_wire.py checks the copies)
_DEFAULT_PAYLOAD = const(4096)
_MIN_PAYLOAD = const(256)
_MAX_PAYLOAD_ABS = const(8192)
_SOF0 = const(0xA5)
_SOF1 = const(0x5A)
_HDR = const(6)
_OVH = const(10)
_SOF0_B = const(b"\xa5")
# MicroPython streams take readinto(buf, n); CPython ones (io, pyserial) only readinto(buf).
_MPY = sys.implementation.name == "micropython"


class FrameReader:
    def __init__(self, max_payload=_DEFAULT_PAYLOAD, slack=0):
        # slack: extra scratch bytes past the capacity, so that feed(chunk, n) with a reused
        # read buffer of up to `slack` bytes copies the whole object (no view, no allocation)
        # even when n < len(chunk). The capacity (what space() reports) is one maximum frame.
        if max_payload < 1 or max_payload > _MAX_PAYLOAD_ABS:
            raise ValueError("max_payload")
        self.max_payload = max_payload
        # Private state under names the device interns anyway (built-in names: head, fill, length,
        # n, data, pack, copy; or the agent's own: mv, crc, payload): docs/device.md "Interned
        # names"
        cap = max_payload + _OVH
        self.length = cap  # the longest frame
        self._size = cap + slack
        self._buf = bytearray(self._size)
        self.mv = memoryview(self._buf)
        self.head = 0  # first unconsumed byte
        self.fill = 0  # one past the last byte fed
        self.n = -1  # the payload length the cached views below are for
        self.crc = None  # view of the CRC'd bytes (header length fields + payload)
        self.data = None  # view of the payload
        self.payload = self.mv[_HDR:]  # where a read landing on the payload start goes
        self.frames = 0
        self.crc_errors = 0
        self.frame_errors = 0
        self.dropped_bytes = 0

    def buffered(self):
        # bytes read that no frame consumed yet (a partial frame, or garbage before one)
        return self.fill - self.head

    def pack(self):
        # Move the unconsumed bytes [head, fill) to index 0.
        s = self.head
        if s == 0:
            return
        m = self.fill - s
        if m:
            self.copy(s, m)
        self.head = 0
        self.fill = m

    def copy(self, s, m):
        self._buf[0:m] = self.mv[s : s + m]  # one small view (rare on the device)

    def readinto_from(self, stream, n=-1):
        """Read from stream straight into the buffer (MicroPython: readinto(buf, n); CPython:
        readinto(buf) on a sized view, e.g. io.BytesIO, pyserial).

        Reads at most the bytes still missing for the current frame (so frames stay at index 0
        and no compaction is needed), or n if smaller. Returns the count read (0 or None when the
        stream had nothing). Reads that land on the frame start or the payload start use cached
        views and allocate nothing; a partial read elsewhere allocates one small view.
        """
        if self.head == self.fill:
            self.head = 0
            self.fill = 0
        elif self.head:
            self.pack()
        # the bytes still missing for the current frame (the header first)
        e = self.fill
        b = self._buf
        if e < _HDR:
            want = _HDR - e
        else:
            ln = b[2] | (b[3] << 8)
            if b[0] != _SOF0 or b[1] != _SOF1 or ln == 0 or ln > self.max_payload:
                # garbage at the start: next() resynchronises; read in bulk meanwhile, not
                # byte by byte (frames after it get moved to index 0 by next())
                want = self.length - e
            else:
                want = ln + _OVH - e
        if want <= 0:
            return 0  # a whole frame is already buffered: call next()
        if 0 <= n < want:
            want = n
        if e == 0:
            view = self.mv
        elif e == _HDR:
            view = self.payload
        else:
            view = self.mv[e:]
        if _MPY:
            got = stream.readinto(view, want)
        else:
            got = stream.readinto(view[:want])
        if got:
            self.fill = e + got
        return got

    # ---- output -----------------------------------------------------------------------------
    def next(self):
        """The payload of the next valid frame as a memoryview, or None if none is complete.

        The view is valid until the next call to feed(), readinto_from() or next().
        """
        b = self._buf
        while True:
            s = self.head
            e = self.fill
            if s >= e:
                self.head = 0
                self.fill = 0
                return None
            if b[s] != _SOF0:
                i = b.find(_SOF0_B, s, e)
                if i < 0:
                    i = e
                self.dropped_bytes += i - s
                self.frame_errors += 1
                self.head = i
                continue
            avail = e - s
            if avail < _HDR:
                if s + _HDR > self.length:
                    self.pack()
                return None
            ln = b[s + 2] | (b[s + 3] << 8)
            nln = b[s + 4] | (b[s + 5] << 8)
            if b[s + 1] != _SOF1 or (ln ^ nln) != 0xFFFF or ln == 0 or ln > self.max_payload:
                self.frame_errors += 1
                self.dropped_bytes += 1
                self.head = s + 1
                continue
            total = ln + _OVH
            if avail < total:
                if s + total > self.length:
                    self.pack()
                return None
            if s:
                self.pack()  # candidate to index 0: cached views stay valid
            if ln != self.n:
                self.crc = self.mv[2 : _HDR + ln]
                self.data = self.mv[_HDR : _HDR + ln]
                self.n = ln
            crc = binascii.crc32(self.crc) & 0xFFFFFFFF
            p = _HDR + ln
            got = b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24)
            if crc != got:
                self.crc_errors += 1
                self.dropped_bytes += 1
                self.head = 1
                continue
            self.frames += 1
            self.head = total
            return self.data


class FrameWriter:
    """Preallocated transmit buffer for the device: build a payload in place, then seal it.

    w = FrameWriter(256)
    uart.write(w.seal(messages.ack_into(w.buf, w.PAYLOAD, off, win, ph)))
    seal() allocates nothing once a payload length has been seen (views cached by length).
    """

    PAYLOAD = _HDR

    def __init__(self, max_payload=_MIN_PAYLOAD):
        self.buf = bytearray(max_payload + _OVH)
        self.mv = memoryview(self.buf)
        self.max_payload = max_payload
        self.n = -1  # the payload length the cached views are for (names: FrameReader's)
        self.crc = None
        self.frame = None

    def seal(self, end):
        """Payload occupies buf[PAYLOAD:end]; writes header + CRC, returns the frame's view."""
        ln = end - _HDR
        if ln <= 0 or ln > self.max_payload:
            raise ValueError("payload length")
        _put_header(self.buf, 0, ln)
        if ln != self.n:
            self.crc = self.mv[2:end]
            self.frame = self.mv[: end + 4]
            self.n = ln
        crc = binascii.crc32(self.crc) & 0xFFFFFFFF
        _put_crc(self.buf, end, crc)
        return self.frame
