# Framing (docs/protocol.md, "Frame"): SOF0 SOF1 LEN(u16 LE) NLEN(u16 LE) payload CRC32(LE).
#
# FrameParser is sans-I/O: bytes go in through feed() (or straight from a stream through
# readinto_from()), payloads come out of next() as memoryviews into one preallocated buffer.
# The buffer never grows. A candidate frame is always moved to buffer index 0 before its CRC is
# checked, so the views used for the CRC and the payload depend only on LEN and are cached: with
# same-size frames (a transfer) next() allocates nothing on MicroPython.
# Moving bytes (compaction) is needed only when more than one frame's bytes were buffered at once:
# readinto_from() (the device) reads just the bytes the current frame still misses, so there it
# happens only after garbage on the line and copies through one small memoryview. feed() with
# chunks that cut frames anywhere (the host) compacts often: its first call allocates a
# micropython.RingIO of one frame, used from then on as an allocation-free memmove. The device
# never pays for that ring.
#
# Resynchronisation: a bad header (SOF, NLEN, LEN range) drops one byte and searches for the next
# SOF0; a CRC failure drops only the first byte of that candidate, so a real frame that starts
# inside the corrupted span is still found. Drops are counted, never raised.
#
# The device's part lives in framing.py (FrameReader: readinto_from + next; FrameWriter) and
# hotpath.py (encode_frame; frame), which the device loads alone; this module re-exports them
# and adds the host's feed().
from otalink.protocol import codes
from otalink.protocol.framing import FrameReader as _FrameReader
from otalink.protocol.framing import FrameWriter  # noqa: F401
from otalink.protocol.hotpath import encode_frame, frame  # noqa: F401

try:
    from micropython import RingIO, const
except ImportError:  # CPython (or a port without RingIO): plain slice copies
    RingIO = None

    def const(x):
        return x


class FrameParser(_FrameReader):
    def __init__(self, max_payload=codes.DEFAULT_PAYLOAD, slack=0):
        # slack: extra scratch bytes past the capacity, so that feed(chunk, n) with a reused
        # read buffer of up to `slack` bytes copies the whole object (no view, no allocation)
        # even when n < len(chunk). The capacity (what space() reports) is one maximum frame.
        super().__init__(max_payload, slack)
        # feed()'s memmove ring (see module comment): made by the first compaction feed() needs.
        self._ring = None

    # ---- input (buffered(): FrameReader's) ---------------------------------------------------
    def space(self):
        """Bytes that feed()/readinto_from() can take now (after compaction)."""
        return self.length - (self.fill - self.head)

    def copy(self, s, m):
        # FrameReader.pack's copy, through the RingIO once feed() made one (no view)
        ring = self._ring
        if ring is None:
            _FrameReader.copy(self, s, m)
        else:
            ring.write(self._buf, s, m)
            ring.readinto(self._buf, m)

    def feed(self, data, n=-1):
        """Copy n bytes (all if -1) of data into the buffer; returns how many were taken.

        Takes at most space() bytes: call next() until it returns None, then feed the rest.
        No allocation when data is a whole object that fits (n == len(data), or the parser
        was built with slack >= len(data)); otherwise one small view is created.
        """
        dn = len(data)
        if n < 0 or n > dn:
            n = dn
        if self._ring is None and RingIO is not None:
            self._ring = RingIO(self.length + 1)  # once: feed() compacts through it from now on
        if self.fill + n > self.length or (n < dn and self.fill + dn > self._size):
            self.pack()
        e = self.fill
        room = self.length - e
        if n > room:
            n = room
        if n <= 0:
            return 0
        if e + dn <= self._size:
            # Whole-object slice assignment: no view, no allocation. Bytes past n are scratch.
            self._buf[e : e + dn] = data
        else:
            self._buf[e : e + n] = memoryview(data)[:n]
        self.fill = e + n
        return n

    def feed_all(self, data):
        """Convenience for the host: feed all of data, return the complete payloads as bytes."""
        out = []
        mv = memoryview(data)
        pos = 0
        n = len(mv)
        while True:
            if pos < n:
                pos += self.feed(mv[pos:])
            p = self.next()
            while p is not None:
                out.append(bytes(p))
                p = self.next()
            if pos >= n:
                return out
