# Seeded fuzz under MicroPython: random and mutated streams into FrameParser, random payloads into
# cbor.loads / messages.parse / DataView. Only frames or ProtocolErrors may come out, with a small
# heap (an allocation sized by an unchecked length would raise MemoryError and fail the test).
# Then the MicroPython side of issue 10's decoder defects (the CPython side is
# tests/protocol/test_cbor.py; the differential fuzz of both runtimes is tests/fuzz/).
# mpy-heapsize: 96k
import binascii
import random
import struct
import sys

from otalink.protocol import cbor, codes, frame, hotpath, messages, wire
from otalink.protocol.errors import ProtocolError

sys.path.append("tests/fuzz")
import cases

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


# ---- issue 10: what CPython refuses, MicroPython refuses with the same code ------------------
def _code(data):
    try:
        cbor.loads(data)
    except ProtocolError as e:
        return (e.code, e.detail)
    return None


def test_text_strings_must_be_valid_utf8():
    bad = []
    for raw, ok in cases.utf8():
        item = cases.tstr(raw)
        for prefix in (b"", b"\x82\x0f", b"\x83\x01\x81"):
            data = prefix + item + (b"\x00" if prefix == b"\x83\x01\x81" else b"")
            want = None if ok else (codes.E_BAD_MESSAGE, len(prefix))
            if _code(data) != want:
                bad.append((data, _code(data)))
    assert not bad, bad
    # and valid text decodes to the same characters as on CPython
    assert cbor.loads(cases.tstr(b"\xf4\x8f\xbf\xbf")) == "\U0010ffff"
    assert cbor.loads(cases.tstr(b"a\xc3\xbcb")) == "a\u00fcb"


def test_text_utf8_sweep_against_rfc3629():
    # every short sequence (tests/fuzz/cases.py utf8_sweep): accepted exactly when RFC 3629's
    # table says so (the reference agrees with CPython's decoder: tests/protocol/test_cbor.py)
    bad = []
    nbad = 0
    n = 0
    for b in cases.utf8_sweep():
        n += 1
        if (_code(cases.tstr(b)) is None) != cases.utf8_valid(b):
            nbad += 1
            if len(bad) < 20:
                bad.append(b)
    assert not nbad, (nbad, bad)
    assert n > 79000


def test_instruction_with_invalid_utf8_version_is_refused():
    # the version of a signed instruction reaches every later INFO/STATUS (docs/protocol.md 4.2)
    instr = bytearray(
        messages.encode_instruction("ecu", "hw", "2.0.0", 2, 10, bytes(32), 0, 1, "t", 0)
    )
    i = instr.find(b"\x652.0.0")
    instr[i + 1 : i + 6] = b"2.\xc0\x80."  # an overlong NUL, same length
    try:
        wire.decode_instruction(bytes(instr))
    except ProtocolError as e:
        assert (e.code, e.detail) == (codes.E_BAD_INSTRUCTION, 0xFF), (e.code, e.detail)
    else:
        raise AssertionError("accepted")


TAILS = (b"", b"\x00", bytes(2), bytes(4), bytes(8), b"\xff" * 8, b"\x01" * 9)


def test_every_initial_byte_decided_as_the_profile_table_says():
    bad = []
    for ib in range(256):
        major = ib >> 5
        ai = ib & 31
        if major in (5, 6) or (major == 7 and ib not in (0xF4, 0xF5, 0xF6)) or 28 <= ai <= 31:
            want = codes.E_BAD_MESSAGE
        elif ai == 27:
            want = codes.E_TOO_LARGE
        else:
            continue
        for tail in TAILS:
            for prefix in (b"", b"\x83\x04\x00", b"\x82\x0f"):
                data = prefix + bytes([ib]) + tail
                if _code(data) != (want, len(prefix)):
                    bad.append((data, _code(data)))
    assert not bad, bad
    assert _code(b"\xdb") == (codes.E_BAD_MESSAGE, 0)
    assert _code(b"\xbb" + bytes(8)) == (codes.E_BAD_MESSAGE, 0)


def fast_path(dv, out, mv):
    # device/session.py Session._handle's order (tests/fuzz/runner.py has the same)
    if dv.parse(mv):
        return [4, dv.offset, dv.data]
    if hotpath.parse_small(mv, out) >= 0:
        return out
    return wire.parse(mv)


def test_data_fast_path_answers_what_the_full_parser_answers():
    dv = hotpath.DataView()
    out = [0] * 8
    bad = []
    for h in cases.MALFORMED_DATA:
        payload = bytearray(binascii.unhexlify(h))
        got = []
        for fn in (wire.parse, lambda mv: fast_path(dv, out, mv)):
            try:
                fn(memoryview(payload))
                got.append(None)
            except ProtocolError as e:
                got.append((e.code, e.detail))
        if got[0] is None or got[0] != got[1]:
            bad.append((h, got))
    assert not bad, bad
