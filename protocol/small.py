# The small messages without the codec (docs/protocol.md section 3: shortcuts that answer every
# payload exactly as the full parser does): the device's request dispatch (device/serve.py) loads
# this per request; the host gets the names through hotpath.py.
#   parse_small(payload, out) -> type | -1   messages that are only uints (and HELLO's /
#                                            STATUS_REQ's nonce), without the codec
#   parse_app(payload, out) -> 17 | -1      APP [17, chan, id, data] (the application channel)
try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


# protocol/codes.py values this module uses, as private consts (tests/protocol/test_wire.py)
_MIN_PAYLOAD = const(256)
_MSG_ACK = const(0x5)
_MSG_APP = const(0x11)
_MSG_END = const(0x8)
_MSG_ERROR = const(0xF)
_MSG_HELLO = const(0x1)
_MSG_PROGRESS = const(0x7)
_MSG_STATUS_REQ = const(0x10)
_APP_MAX_CHAN = const(255)
_APP_MAX_DATA = const(256)


def parse_small(mv, out):
    """Parse a message made of uints only (END, ERROR, ACK, PROGRESS) or of uints and one
    16-byte nonce (HELLO, STATUS_REQ: the nonce is a memoryview into mv) into out[0..] (a list
    of >= 4 items, reused); returns its type. (Signed commands and RESULT carry byte strings:
    the full parser takes them.)

    Returns -1 for anything else, well-formed or not: messages.parse() then decodes it or
    raises the error it deserves, so both paths accept and reject exactly the same payloads.
    """
    end = len(mv)
    if end < 2:
        return -1
    n = mv[0] - 0x80
    t = mv[1]
    # fields after the type (-1: not one of these messages), and which one is the nonce
    nb = -1
    if t == _MSG_END:
        k = 1
    elif t == _MSG_HELLO:
        k = 3
        nb = 2
    elif t == _MSG_STATUS_REQ:
        k = 1
        nb = 1
    elif t == _MSG_ERROR:
        k = 3
    elif t == _MSG_ACK or t == _MSG_PROGRESS:
        k = 3
    else:
        return -1
    if n != k + 1:
        return -1
    out[0] = t
    p = 2
    i = 1
    while i < n:
        # a shortest-form major-0 head; anything else goes to the full parser
        if p >= end:
            return -1
        v = mv[p]
        if i == nb:
            # the nonce: a bstr of exactly 16 bytes (head 0x50)
            if v != 0x50 or p + 17 > end:
                return -1
            out[i] = mv[p + 1 : p + 17]
            p += 17
            i += 1
            continue
        if v < 24:
            p += 1
        elif v == 24 and p + 2 <= end:
            v = mv[p + 1]
            p += 2
            if v < 24:
                return -1
        elif v == 25 and p + 3 <= end:
            v = (mv[p + 1] << 8) | mv[p + 2]
            p += 3
            if v < 0x100:
                return -1
        elif v == 26 and p + 5 <= end:
            v = (mv[p + 1] << 24) | (mv[p + 2] << 16) | (mv[p + 3] << 8) | mv[p + 4]
            p += 5
            if v < 0x10000:
                return -1
        else:
            return -1
        out[i] = v
        i += 1
    if t == _MSG_HELLO and out[3] < _MIN_PAYLOAD:
        return -1  # the full parser's bound on host_max_payload
    return t if p == end else -1


def _uint(mv, p, end):
    # a shortest-form major-0 head at p: (value, next position), or (-1, 0) for anything else
    if p >= end:
        return -1, 0
    v = mv[p]
    if v < 24:
        return v, p + 1
    if v == 24 and p + 2 <= end:
        v = mv[p + 1]
        return (v, p + 2) if v >= 24 else (-1, 0)
    if v == 25 and p + 3 <= end:
        v = (mv[p + 1] << 8) | mv[p + 2]
        return (v, p + 3) if v >= 0x100 else (-1, 0)
    if v == 26 and p + 5 <= end:
        v = (mv[p + 1] << 24) | (mv[p + 2] << 16) | (mv[p + 3] << 8) | mv[p + 4]
        return (v, p + 5) if v >= 0x10000 else (-1, 0)
    return -1, 0


def _bstr(mv, p, end):
    # a shortest-form bstr head at p whose bytes all follow: (length, their position), or (-1, 0)
    if p >= end:
        return -1, 0
    h = mv[p]
    if 0x40 <= h <= 0x57:
        n = h - 0x40
        p += 1
    elif h == 0x58 and p + 2 <= end and mv[p + 1] >= 24:
        n = mv[p + 1]
        p += 2
    elif h == 0x59 and p + 3 <= end and mv[p + 1]:
        n = (mv[p + 1] << 8) | mv[p + 2]
        p += 3
    else:
        return -1, 0
    return (n, p) if p + n <= end else (-1, 0)


def parse_app(mv, out):
    """APP [17, chan <= 255, id, data bstr <= 256] into out[0..3] (data: a memoryview into mv);
    returns 17, or -1 for anything else, well-formed or not (messages.parse() then decodes it or
    raises the error it deserves: both paths answer every payload alike)."""
    end = len(mv)
    if end < 5 or mv[0] != 0x84 or mv[1] != _MSG_APP:
        return -1
    chan, p = _uint(mv, 2, end)
    if chan < 0 or chan > _APP_MAX_CHAN:
        return -1
    mid, p = _uint(mv, p, end)
    if mid < 0:
        return -1
    n, p = _bstr(mv, p, end)
    if n < 0 or n > _APP_MAX_DATA or p + n != end:
        return -1
    out[0] = _MSG_APP
    out[1] = chan
    out[2] = mid
    out[3] = mv[p:end]
    return _MSG_APP
