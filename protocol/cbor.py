# Compact CBOR (RFC 8949) codec for exactly the otalink profile (docs/protocol.md, "CBOR profile"):
#   major 0/1 integers within [-2**32, 2**32-1], shortest form only;
#   major 2 byte strings and major 3 UTF-8 text strings (valid UTF-8, RFC 3629) up to _MAX_STR
#   bytes; major 4 arrays up to _MAX_ITEMS items, nesting depth up to MAX_DEPTH;
#   simple values false/true/null.
# Everything else (maps, tags, floats, undefined, indefinite lengths, non-shortest heads, invalid
# UTF-8) raises ProtocolError(E_BAD_MESSAGE); a declared length over its bound raises
# ProtocolError(E_TOO_LARGE) before anything is allocated; truncated input is E_BAD_MESSAGE. No
# other exception escapes. One input gets one code on both runtimes: the order of the checks is
# the one of docs/protocol.md section 3 (initial byte, head, bound, content).
#
# Byte strings: decode(mv, pos) returns memoryview slices of the input (zero-copy) on both runtimes.
# loads(data) returns bytes on CPython (convenient, hashable) and memoryview slices on MicroPython
# (zero-copy; call bytes() where a copy is needed). Pass copy=True/False to loads to force either.
# Arrays decode as lists. Tuples encode as arrays.
import sys

from otalink.protocol.errors import ProtocolError
from otalink.protocol.hotpath import put_head

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


# protocol/codes.py values this module uses, as private consts (folded by the compiler; codes.py
# itself is ~100 names the heap would keep; tests/protocol/test_wire.py checks the copies)
_E_BAD_MESSAGE = const(10)
_E_TOO_LARGE = const(13)
_MAX_PAYLOAD_ABS = const(8192)

_MAX_ITEMS = const(16)
MAX_DEPTH = const(4)
_MAX_STR = const(8192)  # = _MAX_PAYLOAD_ABS: no string can be longer than a frame
MAX_UINT = const(0xFFFFFFFF)


def _bad(detail):
    raise ProtocolError(_E_BAD_MESSAGE, detail)


def _big(detail):
    raise ProtocolError(_E_TOO_LARGE, detail)


# RFC 3629 forbids what MicroPython's str() lets through: its check (py/unicode.c utf8_check) is
# structural only (lead bytes, continuation counts, nothing cut). Once that passed, what is left
# is found by looking for lead bytes: C0 C1 (overlong 2-byte forms) and F5..F7 (over U+10FFFF)
# anywhere, and the second byte out of range after E0 (overlong), ED (surrogates D800..DFFF), F0
# (overlong) and F4 (over U+10FFFF). CPython's decoder refuses all of it already; the check runs
# on both runtimes so that both refuse exactly the same text. It costs only non-ASCII text (rare:
# every text field is an id or a version), in C-speed scans; the loops run once per occurrence of
# those four leads.
_NEVER = const((b"\xc0", b"\xc1", b"\xf5", b"\xf6", b"\xf7"))
_SECOND = const(
    ((b"\xe0", 0xA0, 0xBF), (b"\xed", 0x80, 0x9F), (b"\xf0", 0x90, 0xBF), (b"\xf4", 0x80, 0x8F))
)


def _utf8_ok(b):
    # b: bytes that str(b, "utf-8") accepted (so every lead byte has its continuation bytes)
    for lead in _NEVER:
        if lead in b:
            return False
    for lead, lo, hi in _SECOND:
        i = b.find(lead)
        while i >= 0:
            c = b[i + 1]
            if c < lo or c > hi:
                return False
            i = b.find(lead, i + 2)
    return True


# ---- decoding ------------------------------------------------------------------------------


def _dec(mv, pos, end, depth, copy):
    if pos >= end:
        _bad(pos)  # truncated
    ib = mv[pos]
    start = pos
    pos += 1
    major = ib >> 5
    ai = ib & 31
    if major == 7:
        if ai == 20:
            return False, pos
        if ai == 21:
            return True, pos
        if ai == 22:
            return None, pos
        _bad(start)  # floats, undefined, other simple values, break
    if major == 5 or major == 6:
        _bad(start)  # maps and tags are outside the profile, whatever their argument
    if ai < 24:
        val = ai
    elif ai == 24:
        if pos + 1 > end:
            _bad(start)
        val = mv[pos]
        pos += 1
        if val < 24:
            _bad(start)  # not the shortest form
    elif ai == 25:
        if pos + 2 > end:
            _bad(start)
        val = (mv[pos] << 8) | mv[pos + 1]
        pos += 2
        if val < 0x100:
            _bad(start)
    elif ai == 26:
        if pos + 4 > end:
            _bad(start)
        val = (mv[pos] << 24) | (mv[pos + 1] << 16) | (mv[pos + 2] << 8) | mv[pos + 3]
        pos += 4
        if val < 0x10000:
            _bad(start)
    elif ai == 27:
        _big(start)  # 64-bit argument: shortest form means >= 2**32, over every bound
    else:
        _bad(start)  # reserved (28..30) or indefinite length (31)
    if major == 0:
        return val, pos
    if major == 1:
        return -1 - val, pos
    if major == 2 or major == 3:
        if val > _MAX_STR:
            _big(start)
        if val > end - pos:
            _bad(start)  # truncated: checked before slicing, nothing sized by val is allocated
        if major == 2:
            v = mv[pos : pos + val]
            if copy:
                v = bytes(v)
            return v, pos + val
        # bytes first: MicroPython's str() of a bytes object shares its data (one copy in all)
        b = bytes(mv[pos : pos + val])
        try:
            s = str(b, "utf-8")
        except UnicodeError:
            _bad(start)
        if len(s) != val and not _utf8_ok(b):  # (as many characters as bytes: ASCII)
            _bad(start)
        return s, pos + val
    # major 4
    if val > _MAX_ITEMS:
        _big(start)
    if depth >= MAX_DEPTH:
        _big(start)
    if val > end - pos:
        _bad(start)  # every item takes at least one byte
    out = []
    for _ in range(val):
        item, pos = _dec(mv, pos, end, depth + 1, copy)
        out.append(item)
    return out, pos


def decode(mv, pos=0, end=-1, copy=False):
    """Decode one item from mv[pos:end]; returns (obj, newpos). Byte strings are views of mv."""
    if not isinstance(mv, memoryview):
        mv = memoryview(mv)
    if end < 0:
        end = len(mv)
    return _dec(mv, pos, end, 0, copy)


def loads(data, copy=None):
    """Decode data, which must hold exactly one item (trailing bytes are E_BAD_MESSAGE)."""
    if copy is None:
        copy = sys.implementation.name != "micropython"
    mv = data if isinstance(data, memoryview) else memoryview(data)
    end = len(mv)
    obj, pos = _dec(mv, 0, end, 0, copy)
    if pos != end:
        _bad(pos)
    return obj


# ---- encoding ------------------------------------------------------------------------------


def _head_len(val):
    if val < 24:
        return 1
    if val < 0x100:
        return 2
    if val < 0x10000:
        return 3
    if val <= MAX_UINT:
        return 5
    _big(0)


def _size(obj, depth):
    if obj is None or obj is True or obj is False:
        return 1
    if isinstance(obj, int):
        return _head_len(obj if obj >= 0 else -1 - obj)
    if isinstance(obj, str):
        n = len(obj.encode("utf-8"))
        if n > _MAX_STR:
            _big(n)
        return _head_len(n) + n
    if isinstance(obj, (bytes, bytearray, memoryview)):
        n = len(obj)
        if n > _MAX_STR:
            _big(n)
        return _head_len(n) + n
    if isinstance(obj, (list, tuple)):
        if len(obj) > _MAX_ITEMS or depth >= MAX_DEPTH:
            _big(len(obj))
        n = 1
        for item in obj:
            n += _size(item, depth + 1)
        return n
    _bad(0)


def _room(buf, pos, n):
    if pos + n > len(buf):
        _big(pos)


def _enc(obj, buf, pos, depth):
    if obj is None:
        _room(buf, pos, 1)
        buf[pos] = 0xF6
        return pos + 1
    if obj is True:
        _room(buf, pos, 1)
        buf[pos] = 0xF5
        return pos + 1
    if obj is False:
        _room(buf, pos, 1)
        buf[pos] = 0xF4
        return pos + 1
    if isinstance(obj, int):
        if obj >= 0:
            major = 0
            val = obj
        else:
            major = 1
            val = -1 - obj
        _room(buf, pos, _head_len(val))
        return put_head(major, val, buf, pos)
    if isinstance(obj, str):
        obj = obj.encode("utf-8")
        major = 3
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        major = 2
    elif isinstance(obj, (list, tuple)):
        n = len(obj)
        if n > _MAX_ITEMS or depth >= MAX_DEPTH:
            _big(pos)
        _room(buf, pos, 1)
        pos = put_head(4, n, buf, pos)
        for item in obj:
            pos = _enc(item, buf, pos, depth + 1)
        return pos
    else:
        _bad(pos)
    n = len(obj)
    if n > _MAX_STR:
        _big(pos)
    _room(buf, pos, _head_len(n) + n)
    pos = put_head(major, n, buf, pos)
    buf[pos : pos + n] = obj
    return pos + n


# Public names for hand-built hot-path payloads (device ACK/RESULT/ERROR): write one head in
# shortest form at pos (caller checked the room; values over 2**32-1 raise E_TOO_LARGE) and the
# size such a head takes.
head_len = _head_len


def encode_into(obj, buf, pos=0):
    """Encode obj into buf at pos; returns the new position. E_TOO_LARGE if it does not fit."""
    return _enc(obj, buf, pos, 0)


def dumps(obj):
    """Encode obj to bytes (shortest-form heads, definite lengths)."""
    buf = bytearray(_size(obj, 0))
    _enc(obj, buf, 0, 0)
    return bytes(buf)
