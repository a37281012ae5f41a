# The device's per-DATA-frame path allocates nothing: FrameParser -> DataView -> RxWindow ->
# crc32 + sha256 over the data -> ACK built and framed in place, all under micropython.heap_lock().
# mpy-heapsize: 1m
import binascii
import gc
import hashlib
import io

import micropython
from otalink.protocol import codes, frame, hotpath, messages, transfer

MAXP = codes.DEFAULT_PAYLOAD
CHUNK = MAXP - messages.DATA_OVERHEAD
N = 40


def make_wire(start):
    image = bytearray(CHUNK * N)
    for i in range(0, len(image), 251):
        image[i] = i & 0xFF
    buf = bytearray(MAXP)
    out = bytearray(N * (MAXP + codes.FRAME_OVERHEAD))
    pos = 0
    for k in range(N):
        n = messages.data_into(
            buf, 0, start + k * CHUNK, memoryview(image)[k * CHUNK : (k + 1) * CHUNK]
        )
        pos = frame.encode_frame(memoryview(buf)[:n], out, pos)
    return image, memoryview(out)[:pos]


class Device:
    def __init__(self, start, slack=0, reader=False):
        # reader: hotpath.FrameReader, the parser the device agent really uses (no feed())
        self.p = hotpath.FrameReader(MAXP) if reader else frame.FrameParser(MAXP, slack)
        self.dv = messages.DataView()
        self.rx = transfer.RxWindow(4 * CHUNK, expected=start)
        self.fw = frame.FrameWriter(64)
        self.h = hashlib.sha256()
        self.crc = 0
        self.acks = 0

    def handle(self, payload):
        dv = self.dv
        if not dv.parse(payload):
            raise AssertionError("not DATA")
        n = len(dv.data)
        c = self.rx.classify(dv.offset, n)
        if c == transfer.ACCEPT:
            self.crc = binascii.crc32(dv.data, self.crc)
            self.h.update(dv.data)
            self.rx.accept(n)
        end = messages.ack_into(
            self.fw.buf, self.fw.PAYLOAD, self.rx.expected, self.rx.window, codes.PH_RECEIVING
        )
        self.fw.seal(end)
        self.acks += 1


def run_locked(step):
    # Two warm-up frames create the cached views; everything after must not allocate.
    step()
    step()
    gc.collect()
    micropython.heap_lock()
    try:
        while step():
            pass
    finally:
        micropython.heap_unlock()


def check(dev, image, start):
    assert dev.acks == N, dev.acks
    assert dev.rx.expected == start + len(image)
    assert dev.crc == binascii.crc32(image)
    assert dev.h.digest() == hashlib.sha256(image).digest()
    assert dev.p.crc_errors == 0 and dev.p.frame_errors == 0


def _readinto_from_stream(reader):
    start = 70000  # offsets take the 5-byte CBOR form: frames have the same size
    image, wire = make_wire(start)
    src = io.BytesIO(wire)
    dev = Device(start, reader=reader)

    def step():
        while True:
            pl = dev.p.next()
            if pl is not None:
                dev.handle(pl)
                return True
            if not dev.p.readinto_from(src):
                return False

    run_locked(step)
    check(dev, image, start)


def test_readinto_from_stream():
    _readinto_from_stream(False)


def test_device_frame_reader_readinto_from_stream():
    _readinto_from_stream(True)


def test_feed_in_odd_chunks():
    # Reads of 1000 bytes that cut frames anywhere: frames are compacted to index 0 through the
    # preallocated RingIO, so this path allocates nothing either.
    start = 100000
    image, wire = make_wire(start)
    src = io.BytesIO(wire)
    chunk = bytearray(1000)
    dev = Device(start, len(chunk))
    state = [0]

    def step():
        while True:
            pl = dev.p.next()
            if pl is not None:
                dev.handle(pl)
                return True
            want = dev.p.space()
            if want > len(chunk):
                want = len(chunk)
            n = src.readinto(chunk, want)
            if not n:
                return False
            dev.p.feed(chunk, n)
            state[0] += n

    run_locked(step)
    check(dev, image, start)
    assert state[0] == len(wire)


def test_heap_lock_really_catches_allocation():
    # The guard itself can fail: slicing a memoryview under heap_lock raises MemoryError.
    mv = memoryview(bytearray(10))
    micropython.heap_lock()
    try:
        mv[1:3]
    except MemoryError:
        caught = True
    else:
        caught = False
    finally:
        micropython.heap_unlock()
    assert caught
