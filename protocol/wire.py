# Validating parsers and the install instruction's decoder: the part of the message layer the
# device needs (docs/protocol.md, "Messages"). messages.py re-exports every public name here and
# adds the builders, the report codec (encode_report / decode_report: the device builds its
# report with device/report.py, so that code stays out of its heap) and the public field-index
# constants; the device imports this module (not messages.py) for BEGIN (and payloads only the
# full parser judges) and drops it again (heap notes in device/session.py), so it keeps its
# constants private (const() folds them and no name is interned). Their values equal messages'
# public ones (tests/protocol/test_wire.py).
from otalink.protocol import cbor
from otalink.protocol.errors import ProtocolError

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


# protocol/codes.py values this module uses, as private consts (folded by the compiler; codes.py
# itself is ~100 names the heap would keep; tests/protocol/test_wire.py checks the copies)
_COMP_DEFLATE_SEG = const(2)
_COMP_PATCH_DEFLATE_SEG = const(4)
_COMP_NONE = const(0)
_E_BAD_INSTRUCTION = const(39)
_E_BAD_MESSAGE = const(10)
_E_CMD_AUTH = const(70)
_E_TOO_LARGE = const(13)
_E_UNKNOWN_TYPE = const(11)
_MIN_PAYLOAD = const(256)
_MSG_ABORT = const(0xE)
_MSG_ACK = const(0x5)
_MSG_ACTIVATE = const(0xA)
_MSG_BEGIN = const(0x3)
_MSG_CONFIRM = const(0xC)
_MSG_DATA = const(0x4)
_MSG_END = const(0x8)
_MSG_ERROR = const(0xF)
_MSG_HELLO = const(0x1)
_MSG_INFO = const(0x2)
_MSG_PROGRESS = const(0x7)
_MSG_REBOOT = const(0xB)
_MSG_RESULT = const(0x9)
_MSG_REVERT = const(0xD)
_MSG_STATUS = const(0x6)
_MSG_STATUS_REQ = const(0x10)
_MSG_APP = const(0x11)
_MSG_DEFER = const(0x12)
_MSG_PROBE = const(0x13)
_APP_MAX_CHAN = const(255)
_APP_MAX_DATA = const(256)
_DEFER_MAX_REASON = const(48)

_INSTR_FMT = const(1)
_INSTR_FMT_DELTA = const(2)
_I_BASE_SHA256 = const(11)
_I_ECU_ID = const(1)
_I_EXPIRES = const(8)
_I_FMT = const(0)
_I_HW_ID = const(2)
_I_IMAGE_LEN = const(5)
_I_ISSUED = const(7)
_I_KIND = const(10)
_I_RELEASE = const(4)
_I_SHA256 = const(6)
_I_TARGET = const(9)
_I_VERSION = const(3)
_KEYID_LEN = const(8)
_KIND_FIRMWARE = const(1)
_MAX_BODY = const(1024)
_MAX_CMD = const(96)
_MAX_DATA = const(8176)
_MAX_ID = const(32)
_MAX_INSTR = const(512)
_MAX_SIGS = const(4)
_MAX_TARGET = const(64)
_MAX_UINT = const(0xFFFFFFFF)
_NONCE_LEN = const(16)
_SHA256_LEN = const(32)
_SIG_LEN = const(64)


# ---- validation helpers -------------------------------------------------------------------------
# Field specs: (kind, lo, hi). uint: value in [lo, hi]; bstr/tstr: length in [lo, hi].
_U = const(0)
_B = const(1)
_T = const(2)
_SIGS = const(3)

_UINT = const((_U, 0, _MAX_UINT))
_NONCE = const((_B, _NONCE_LEN, _NONCE_LEN))
_SIG = const((_B, _SIG_LEN, _SIG_LEN))
# a signed command: [type, cmd bstr, keyid bstr8, sig bstr64] (docs/protocol.md "Signed commands")
_CMD = const(((_B, 1, _MAX_CMD), (_B, _KEYID_LEN, _KEYID_LEN), _SIG))

SPECS = {
    _MSG_HELLO: (_UINT, _NONCE, (_U, _MIN_PAYLOAD, _MAX_UINT)),
    _MSG_INFO: ((_B, 1, _MAX_BODY), _SIG),
    _MSG_BEGIN: (
        (_B, 1, _MAX_INSTR),
        (_SIGS, 0, _MAX_SIGS),
        _UINT,
        (_B, _SHA256_LEN, _SHA256_LEN),
        (_U, _COMP_NONE, _COMP_PATCH_DEFLATE_SEG),
        _UINT,
    ),
    _MSG_DATA: (_UINT, (_B, 1, _MAX_DATA)),
    _MSG_ACK: (_UINT, _UINT, _UINT),
    _MSG_STATUS: ((_B, 1, _MAX_BODY), _SIG),
    _MSG_PROGRESS: (_UINT, _UINT, _UINT),
    _MSG_END: (_UINT,),
    _MSG_RESULT: (_UINT, _UINT, _UINT, _NONCE),
    _MSG_ACTIVATE: _CMD,
    _MSG_REBOOT: _CMD,
    _MSG_CONFIRM: _CMD,
    _MSG_REVERT: _CMD,
    _MSG_ABORT: _CMD,
    _MSG_ERROR: (_UINT, _UINT, _UINT),
    _MSG_STATUS_REQ: (_NONCE,),
    # issue 11: the application channel, an application's deferral, the receive probe
    _MSG_APP: ((_U, 0, _APP_MAX_CHAN), _UINT, (_B, 0, _APP_MAX_DATA)),
    _MSG_DEFER: (_UINT, _UINT, (_T, 0, _DEFER_MAX_REASON)),
    _MSG_PROBE: (_UINT, (_B, _SHA256_LEN, _SHA256_LEN), (_U, _COMP_NONE, _COMP_DEFLATE_SEG), _UINT),
}


def _is_uint(v):
    # bool is not an int on MicroPython but is on CPython: exclude it explicitly.
    return isinstance(v, int) and v is not True and v is not False and v >= 0


def _is_bytes(v):
    return isinstance(v, (bytes, bytearray, memoryview))


def _check(v, spec, idx, err):
    kind, lo, hi = spec
    if kind == _U:
        if not _is_uint(v) or v < lo or v > hi:
            raise ProtocolError(err, idx)
    elif kind == _B or kind == _T:
        if kind == _B:
            if not _is_bytes(v):
                raise ProtocolError(err, idx)
            n = len(v)
        else:
            if not isinstance(v, str):
                raise ProtocolError(err, idx)
            n = len(v.encode("utf-8"))
        if n > hi:
            raise ProtocolError(_E_TOO_LARGE if err == _E_BAD_MESSAGE else err, idx)
        if n < lo:
            raise ProtocolError(err, idx)
    else:  # _SIGS: array of [keyid bstr(8), sig bstr(64)]
        if not isinstance(v, list):
            raise ProtocolError(err, idx)
        if len(v) > hi:
            raise ProtocolError(_E_TOO_LARGE if err == _E_BAD_MESSAGE else err, idx)
        for pair in v:
            if (
                not isinstance(pair, list)
                or len(pair) != 2
                or not _is_bytes(pair[0])
                or len(pair[0]) != _KEYID_LEN
                or not _is_bytes(pair[1])
                or len(pair[1]) != _SIG_LEN
            ):
                raise ProtocolError(err, idx)


def _check_text(v, hi, idx, err):
    if not isinstance(v, str):
        raise ProtocolError(err, idx)
    if len(v.encode("utf-8")) > hi:
        raise ProtocolError(err, idx)


def parse(payload, copy=None):
    """Decode and validate one message payload; returns [type, ...fields].

    E_BAD_MESSAGE: not a CBOR array in the profile, wrong arity or field type;
    E_UNKNOWN_TYPE: type not a MSG_* code; E_TOO_LARGE: a length over its bound;
    E_CMD_AUTH: a command (ACTIVATE .. ABORT) that is not [type, cmd, keyid, sig], e.g. the
    unsigned [type] of protocol version 1 (detail 0: not signed).
    """
    msg = cbor.loads(payload, copy)
    if not isinstance(msg, list) or not msg:
        raise ProtocolError(_E_BAD_MESSAGE, 0)
    t = msg[0]
    if not _is_uint(t):
        raise ProtocolError(_E_BAD_MESSAGE, 0)
    spec = SPECS.get(t)
    if spec is None:
        raise ProtocolError(_E_UNKNOWN_TYPE, t if t <= 0xFFFF else 0)
    if len(msg) != len(spec) + 1:
        # an unsigned (old-style) command is refused as such, not as a malformed message
        if _MSG_ACTIVATE <= t <= _MSG_ABORT:
            raise ProtocolError(_E_CMD_AUTH, 0)
        raise ProtocolError(_E_BAD_MESSAGE, len(msg))
    i = 1
    for s in spec:
        _check(msg[i], s, i, _E_BAD_MESSAGE)
        i += 1
    return msg


def decode_instruction(data):
    """Decode and validate an install instruction; any problem is E_BAD_INSTRUCTION (detail =
    field index, or 0xFF for CBOR-level problems). Format 1: 11 fields; format 2: the same and
    base_sha256 (bstr 32), the image a patch of this result may be applied to."""
    err = _E_BAD_INSTRUCTION
    if len(data) > _MAX_INSTR:
        raise ProtocolError(err, 0xFF)
    try:
        v = cbor.loads(data)
    except ProtocolError:
        raise ProtocolError(err, 0xFF)
    if not isinstance(v, list) or len(v) != 11 and len(v) != 12:
        raise ProtocolError(err, 0xFF)
    if v[_I_FMT] != (_INSTR_FMT if len(v) == 11 else _INSTR_FMT_DELTA) or not _is_uint(v[_I_FMT]):
        raise ProtocolError(err, _I_FMT)
    _check_text(v[_I_ECU_ID], _MAX_ID, _I_ECU_ID, err)
    _check_text(v[_I_HW_ID], _MAX_ID, _I_HW_ID, err)
    _check_text(v[_I_VERSION], _MAX_ID, _I_VERSION, err)
    if not v[_I_ECU_ID] or not v[_I_HW_ID] or not v[_I_VERSION]:
        raise ProtocolError(err, _I_ECU_ID)
    for i in (_I_RELEASE, _I_IMAGE_LEN, _I_ISSUED, _I_EXPIRES):
        if not _is_uint(v[i]):
            raise ProtocolError(err, i)
    _check(v[_I_SHA256], (_B, _SHA256_LEN, _SHA256_LEN), _I_SHA256, err)
    _check_text(v[_I_TARGET], _MAX_TARGET, _I_TARGET, err)
    if not _is_uint(v[_I_KIND]) or v[_I_KIND] > _KIND_FIRMWARE:
        raise ProtocolError(err, _I_KIND)
    if len(v) == 12:
        _check(v[_I_BASE_SHA256], (_B, _SHA256_LEN, _SHA256_LEN), _I_BASE_SHA256, err)
    return v


def __getattr__(name):
    # The report codec is host-side (messages.py): the device builds its report with
    # device/report.py and never needs this code in its heap at BEGIN. Old callers of
    # wire.encode_report / wire.decode_report still find them.
    if name == "decode_report" or name == "encode_report":
        from otalink.protocol import messages

        return getattr(messages, name)
    raise AttributeError(name)
