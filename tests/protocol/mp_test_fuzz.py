# Seeded fuzz under MicroPython: random and mutated streams into FrameParser, random payloads into
# cbor.loads / messages.parse / DataView. Only frames or ProtocolErrors may come out, with a small
# heap (an allocation sized by an unchecked length would raise MemoryError and fail the test).
# mpy-heapsize: 96k
import binascii
import random
import struct

from otalink.protocol import cbor, codes, frame, messages
from otalink.protocol.errors import ProtocolError

MAXP = 512


def ref_frame(p):
    body = struct.pack("<HH", len(p), len(p) ^ 0xFFFF) + p
    return b"\xa5\x5a" + body + struct.pack("<I", binascii.crc32(body))


def rbytes(n):
    return bytes(random.getrandbits(8) for _ in range(n))


def run(parser, stream):
    out = []
    pos = 0
    mv = memoryview(stream)
    while pos < len(stream):
        k = random.randint(1, 700)
        out += parser.feed_all(mv[pos : pos + k])
        pos += k
    return out


def test_garbage_and_frames():
    random.seed(1234)
    for _ in range(60):
        pays = []
        stream = bytearray()
        for _ in range(random.randint(0, 6)):
            stream += rbytes(random.randint(0, 40))
            if random.getrandbits(2) == 0:
                stream += b"\xa5\x5a"  # lone SOF pairs in the garbage
            p = rbytes(random.randint(1, MAXP))
            pays.append(p)
            stream += ref_frame(p)
        stream += bytes(MAXP + 10)
        parser = frame.FrameParser(MAXP)
        got = run(parser, bytes(stream))
        assert got == pays, (len(got), len(pays))
        framed = sum(len(p) + 10 for p in pays)
        assert parser.dropped_bytes + framed + parser.buffered() == len(stream)


def test_mutated_streams():
    random.seed(99)
    for _ in range(60):
        pays = [rbytes(random.randint(1, MAXP)) for _ in range(5)]
        stream = bytearray(b"".join(ref_frame(p) for p in pays))
        for _ in range(random.randint(1, 8)):
            stream[random.randint(0, len(stream) - 1)] = random.getrandbits(8)
        stream += bytes(MAXP + 10)
        parser = frame.FrameParser(MAXP)
        for g in run(parser, bytes(stream)):
            assert g in pays
        assert parser.frames + parser.crc_errors + parser.frame_errors >= 1


def test_random_streams():
    random.seed(7)
    parser = frame.FrameParser(MAXP)
    total = 0
    for _ in range(200):
        s = rbytes(random.randint(0, 400))
        total += len(s)
        run(parser, s)
    assert parser.dropped_bytes + parser.buffered() + parser.frames * 10 <= total


def test_random_payloads_only_protocol_errors():
    random.seed(42)
    dv = messages.DataView()
    seeds = [
        messages.data(70000, b"abc"),
        messages.ack(1, 2, 3),
        messages.hello(bytes(16), 4096),
        messages.begin(b"\x01", [[bytes(8), bytes(64)]], 1, bytes(32), 0, 1),
    ]
    for i in range(3000):
        if i & 1:
            data = bytearray(seeds[i % len(seeds)])
            data[random.randint(0, len(data) - 1)] = random.getrandbits(8)
            if random.getrandbits(1):
                data = data[: random.randint(0, len(data))]
            data = bytes(data)
        else:
            data = rbytes(random.randint(0, 24))
        for fn in (cbor.loads, messages.parse):
            try:
                fn(data)
            except ProtocolError as e:
                assert e.code in (codes.E_BAD_MESSAGE, codes.E_TOO_LARGE, codes.E_UNKNOWN_TYPE)
        try:
            dv.parse(memoryview(data))
        except ProtocolError:
            pass


def test_huge_declared_lengths():
    for data in (
        b"\x5a\xff\xff\xff\xff",
        b"\x9a\xff\xff\xff\xff",
        b"\x83\x04\x00\x5a\x7f\xff\xff\xff",
        b"\x7a\x00\x10\x00\x00" + bytes(10),
    ):
        try:
            cbor.loads(data)
        except ProtocolError as e:
            assert e.code in (codes.E_TOO_LARGE, codes.E_BAD_MESSAGE)
        else:
            raise AssertionError(data)


# mpy-mark: slow
def test_soak_many_streams():
    random.seed(2026)
    for _ in range(1500):
        pays = [rbytes(random.randint(1, MAXP)) for _ in range(random.randint(1, 4))]
        stream = bytearray()
        for p in pays:
            stream += rbytes(random.randint(0, 30))
            stream += ref_frame(p)
        flips = random.randint(0, 3)
        for _ in range(flips):
            stream[random.randint(0, len(stream) - 1)] ^= 0x5A
        stream += bytes(MAXP + 10)
        parser = frame.FrameParser(MAXP)
        got = run(parser, bytes(stream))
        for g in got:
            assert g in pays
        if not flips:
            assert got == pays
