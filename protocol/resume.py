# A BEGIN of a known instruction without the codec (docs/protocol.md section 3, the shortcuts):
# the agent's resume mid-transfer (device/serve.py loads this module only while a transfer's
# instruction is known, so the requests of an idle agent never carry its code).
#   parse_begin(payload, out, instr) -> 3 | -1   BEGIN [3, instr, sigs, image_len, sha256,
#                                                compression, wire_len] whose instr is `instr`
from otalink.protocol.small import _bstr, _uint

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


# protocol/codes.py values this module uses, as private consts (tests/protocol/test_wire.py)
_MSG_BEGIN = const(0x3)
_COMP_PATCH_DEFLATE_SEG = const(4)
_MAX_SIGS = const(4)


def parse_begin(mv, out, instr):
    """BEGIN [3, instr, sigs, image_len, sha256, compression, wire_len] whose instruction is
    exactly ``instr`` (the live or interrupted transfer's: the agent's resume) into out[0..6]
    (out[2] None: a known instruction's signatures are not checked again; out[4] a memoryview
    into mv); returns 3. Without the codec: a resume in the middle of a transfer needs no room
    for it beside the transfer's buffers.

    Returns -1 for anything else, well-formed or not (another instruction, a field out of its
    bound, a non-shortest head): the full parser then decodes it or raises the error it deserves,
    so both paths answer every payload alike (tests/protocol/test_messages.py).
    """
    end = len(mv)
    if instr is None or end < 2 or mv[0] != 0x87 or mv[1] != _MSG_BEGIN:
        return -1
    n, p = _bstr(mv, 2, end)
    if n != len(instr) or bytes(mv[p : p + n]) != instr:
        return -1
    p += n
    # sigs: 0..4 pairs [keyid bstr 8, sig bstr 64], every head in its one shortest form
    if p >= end or not 0x80 <= mv[p] <= 0x80 + _MAX_SIGS:
        return -1
    k = mv[p] - 0x80
    p += 1
    while k:
        if p + 76 > end or mv[p] != 0x82 or mv[p + 1] != 0x48 or mv[p + 10] != 0x58:
            return -1
        if mv[p + 11] != 64:
            return -1
        p += 76
        k -= 1
    image_len, p = _uint(mv, p, end)
    if image_len < 0 or p + 34 > end or mv[p] != 0x58 or mv[p + 1] != 32:
        return -1
    sha = mv[p + 2 : p + 34]
    comp, p = _uint(mv, p + 34, end)
    if comp < 0 or comp > _COMP_PATCH_DEFLATE_SEG:
        return -1
    wire_len, p = _uint(mv, p, end)
    if wire_len < 0 or p != end:
        return -1
    out[0] = _MSG_BEGIN
    out[1] = instr
    out[2] = None
    out[3] = image_len
    out[4] = sha
    out[5] = comp
    out[6] = wire_len
    return _MSG_BEGIN
