# Fixed inputs shared by the CPython tests (tests/protocol/test_cbor.py), the MicroPython tests
# (tests/protocol/mp_test_fuzz.py) and the fuzz corpus (tests/fuzz/corpus.py, which starts every
# run with them), so written in the subset both runtimes run:
#   UTF-8 edge cases for CBOR text strings (docs/protocol.md section 3: valid UTF-8, RFC 3629);
#     tests/protocol/test_cbor.py checks every flag against CPython's strict decoder;
#   malformed DATA payloads the fast path must answer exactly like the full parser (issue 10).

VALID = (
    b"",
    b"a",
    b"\x00",
    b"\x7f",
    b"\xc2\x80",  # U+0080, the first 2-byte form
    b"\xc3\xbc",
    b"\xdf\xbf",  # U+07FF
    b"\xe0\xa0\x80",  # U+0800, the first 3-byte form
    b"\xe6\xb0\xb4",
    b"\xed\x9f\xbf",  # U+D7FF, just below the surrogates
    b"\xee\x80\x80",  # U+E000, just above them
    b"\xef\xbf\xbd",
    b"\xef\xbf\xbe",  # U+FFFE: a noncharacter, still valid UTF-8
    b"\xef\xbf\xbf",
    b"\xf0\x90\x80\x80",  # U+10000, the first 4-byte form
    b"\xf0\x90\x85\x91",
    b"\xf4\x8f\xbf\xbf",  # U+10FFFF, the last code point
    b"a\xc3\xbcb",
    b"\xe0\xa0\x80\xed\x9f\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf",
)

INVALID = (
    # overlong forms
    b"\xc0\x80",
    b"\xc0\xaf",
    b"\xc1\xbf",
    b"\xe0\x80\x80",
    b"\xe0\x9f\xbf",
    b"\xf0\x80\x80\x80",
    b"\xf0\x8f\xbf\xbf",
    # UTF-16 surrogates D800..DFFF (alone and as a CESU-8 pair)
    b"\xed\xa0\x80",
    b"\xed\xbf\xbf",
    b"\xed\xa0\x80\xed\xb0\x80",
    # code points over U+10FFFF
    b"\xf4\x90\x80\x80",
    b"\xf4\xbf\xbf\xbf",
    b"\xf5\x80\x80\x80",
    b"\xf6\x80\x80\x80",
    b"\xf7\xbf\xbf\xbf",
    # 5- and 6-byte forms, bytes that never occur
    b"\xf8\x88\x80\x80\x80",
    b"\xfc\x84\x80\x80\x80\x80",
    b"\xfe",
    b"\xff",
    # lone continuation bytes, truncated sequences, a lead followed by a non-continuation
    b"\x80",
    b"\xbf",
    b"\xc3",
    b"\xe6\xb0",
    b"\xf0\x90\x85",
    b"\xc3(",
    b"\xe0\xa0(",
    b"\xe0\xe0\x80",
    # a valid sequence first, then an invalid one with the same lead (a scan must not stop)
    b"ok\xc0\x80",
    b"\xc3\xbc\xed\xa0\x80",
    b"\xe0\xa0\x80\xe0\x80\x80",
    b"\xed\x9f\xbf\xed\xa0\x80",
    b"\xf0\x90\x80\x80\xf0\x80\x80\x80",
    b"\xf4\x8f\xbf\xbf\xf4\x90\x80\x80",
)


def utf8():
    """Every case as (bytes, valid), also embedded in ASCII on both sides."""
    out = []
    for group, ok in ((VALID, True), (INVALID, False)):
        for b in group:
            out.append((b, ok))
            out.append((b"x" * 20 + b + b"y", ok))
    return out


def tstr(b):
    """A CBOR text string head + b (lengths < 65536)."""
    n = len(b)
    if n < 24:
        return bytes([0x60 + n]) + b
    if n < 256:
        return bytes([0x78, n]) + b
    return bytes([0x79, n >> 8, n & 0xFF]) + b


# DATA payloads (hex) the fast path (DataView + the session's fallback) must answer exactly like
# wire.parse: cut, non-shortest, indefinite, 64-bit and wrong-type heads in both fields.
MALFORMED_DATA = (
    "8304005a7fff",  # a cut 32-bit length: the fast path said E_TOO_LARGE, the parser E_BAD_MESSAGE
    "8304005a7fffffff",
    "8304005a",
    "83040059",
    "8304005900",
    "8304005b",
    "8304005bffffffffffffffff",
    "8304005a00000100",  # a non-shortest length
    "83040058170000",
    "8304005f4100ff",  # indefinite length
    "830400590000",
    "83049b0000000000000000",  # a 64-bit array head as offset: E_TOO_LARGE (fast: E_BAD_MESSAGE)
    "83049b",
    "83041b0000000000000001",
    "83041b",
    "830418",
    "8304180041",
    "83041c4100",
    "8304204100",  # a negative offset
    "8304205b",  # ... then a 64-bit byte string head
    "830481005b",
    "8304f54100",
    "8304006100",  # text instead of bytes
    "83040041",  # content cut
    "8304004100ff",  # a trailing byte
    "8304",
    "830400",
    "83040040",  # empty data
)


def utf8_valid(b):
    """RFC 3629's table (section 4) as a byte loop: the reference the tests judge decoders by
    (tests/protocol/test_cbor.py checks it against CPython's decoder on utf8_sweep())."""
    i = 0
    n = len(b)
    while i < n:
        c = b[i]
        if c < 0x80:
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            need, lo, hi = 1, 0x80, 0xBF
        elif c == 0xE0:
            need, lo, hi = 2, 0xA0, 0xBF
        elif c == 0xED:
            need, lo, hi = 2, 0x80, 0x9F
        elif 0xE1 <= c <= 0xEF:
            need, lo, hi = 2, 0x80, 0xBF
        elif c == 0xF0:
            need, lo, hi = 3, 0x90, 0xBF
        elif 0xF1 <= c <= 0xF3:
            need, lo, hi = 3, 0x80, 0xBF
        elif c == 0xF4:
            need, lo, hi = 3, 0x80, 0x8F
        else:
            return False
        if i + need >= n:
            return False  # cut
        if not lo <= b[i + 1] <= hi:
            return False
        for k in range(2, need + 1):
            if not 0x80 <= b[i + k] <= 0xBF:
                return False
        i += need + 1
    return True


def utf8_sweep():
    """Every 1- and 2-byte sequence, every 3-byte one with a lead E0..EF (second byte swept,
    third 80 / BF / 41), every 4-byte lead F0..F7 with its second byte swept: 69,000 inputs."""
    for a in range(256):
        yield bytes([a])
        for b in range(256):
            yield bytes([a, b])
    for a in range(0xE0, 0xF0):
        for b in range(256):
            for c in (0x80, 0xBF, 0x41):
                yield bytes([a, b, c])
    for a in range(0xF0, 0xF8):
        for b in range(0x70, 0xC8):
            yield bytes([a, b, 0x80, 0xBF])
            yield bytes([a, b, 0x80])
