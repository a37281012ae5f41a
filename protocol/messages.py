# Message builders and validating parsers (docs/protocol.md, "Messages").
#
# Every payload is one CBOR array [type, ...fields] with integer codes (codes.MSG_*).
# Builders return payload bytes (frame them with frame.frame / frame.encode_frame); the hot-path
# builders data_into / ack_into write into a caller's buffer and allocate nothing.
# parse(payload) returns the validated list; byte strings in it are bytes on CPython and
# memoryview slices of payload on MicroPython (copy what you keep past the next frame).
# DataView parses DATA frames without allocating (the device's per-frame path).
# Change: DataView and ack_into are defined in hotpath.py (same names here); the device imports
# this module only for HELLO / STATUS_REQ / BEGIN (see hotpath.py).
from otalink.protocol import cbor, codes
from otalink.protocol.errors import ProtocolError

# What the device keeps loaded while serving lives in hotpath.py; re-exported here unchanged.
from otalink.protocol.hotpath import DataView, ack_into  # noqa: F401
from otalink.protocol.hotpath import put_head as _put_head

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


NONCE_LEN = const(16)
SIG_LEN = const(64)
KEYID_LEN = const(8)
SHA256_LEN = const(32)
MAX_INSTR = const(512)
MAX_SIGS = const(4)
MAX_BODY = const(1024)  # INFO/STATUS report body
MAX_ID = const(32)  # ecu_id, hw_id, version text
MAX_TARGET = const(64)
DATA_OVERHEAD = const(16)  # bound on DATA's CBOR bytes around the data: data <= max_payload - 16
MAX_DATA = const(8176)  # codes.MAX_PAYLOAD_ABS - DATA_OVERHEAD
MAX_UINT = const(0xFFFFFFFF)

# Report body (INFO/STATUS) field indices.
R_PROTO = const(0)
R_ECU_ID = const(1)
R_HW_ID = const(2)
R_NONCE = const(3)
R_ACTIVE_SLOT = const(4)
R_BOOT_STATE = const(5)
R_LAST_ERROR = const(6)
R_SLOTS = const(7)
R_CAPS = const(8)
R_TRANSFER = const(9)
R_RELEASE_FLOOR = const(10)
R_TRUSTED_TIME = const(11)
R_TRIAL_BOOTS = const(12)
# Slot entry [state, version, release_counter, image_len, sha256]
S_STATE = const(0)
S_VERSION = const(1)
S_RELEASE = const(2)
S_IMAGE_LEN = const(3)
S_SHA256 = const(4)
# caps [max_payload, window, slot_size, erase_size, write_size, deflate_wbits, flags]
C_MAX_PAYLOAD = const(0)
C_WINDOW = const(1)
C_SLOT_SIZE = const(2)
C_ERASE_SIZE = const(3)
C_WRITE_SIZE = const(4)
C_DEFLATE_WBITS = const(5)
C_FLAGS = const(6)
# transfer [phase, wire_offset, wire_len, image_len]
T_PHASE = const(0)
T_WIRE_OFFSET = const(1)
T_WIRE_LEN = const(2)
T_IMAGE_LEN = const(3)

# Install instruction field indices.
I_FMT = const(0)
I_ECU_ID = const(1)
I_HW_ID = const(2)
I_VERSION = const(3)
I_RELEASE = const(4)
I_IMAGE_LEN = const(5)
I_SHA256 = const(6)
I_ISSUED = const(7)
I_EXPIRES = const(8)
I_TARGET = const(9)
I_KIND = const(10)
INSTR_FMT = const(1)
KIND_APP = const(0)
KIND_FIRMWARE = const(1)

_E_BAD = codes.E_BAD_MESSAGE
_E_BIG = codes.E_TOO_LARGE


# ---- builders ---------------------------------------------------------------------------------


def hello(nonce, max_payload, proto_ver=codes.PROTOCOL_VERSION):
    return cbor.dumps([codes.MSG_HELLO, proto_ver, nonce, max_payload])


def info(body, sig):
    return cbor.dumps([codes.MSG_INFO, body, sig])


def begin(instr, sigs, image_len, sha256, compression, wire_len):
    """sigs: list of (keyid(8), sig(64)) pairs."""
    return cbor.dumps(
        [codes.MSG_BEGIN, instr, [list(s) for s in sigs], image_len, sha256, compression, wire_len]
    )


def data(offset, chunk):
    return cbor.dumps([codes.MSG_DATA, offset, chunk])


def data_into(buf, pos, offset, chunk):
    """Write a DATA payload [4, offset, chunk] into buf at pos; returns the end position."""
    n = len(chunk)
    if n > MAX_DATA:
        raise ProtocolError(_E_BIG, n)
    if offset < 0 or offset > MAX_UINT:
        raise ProtocolError(_E_BIG, 0)
    # Worst-case heads (5 + 3 bytes) first, so the common case costs no extra calls.
    if pos + 10 + n > len(buf):
        need = pos + 2 + cbor.head_len(offset) + cbor.head_len(n) + n
        if need > len(buf):
            raise ProtocolError(_E_BIG, need)
    buf[pos] = 0x83
    buf[pos + 1] = codes.MSG_DATA
    pos = _put_head(0, offset, buf, pos + 2)
    pos = _put_head(2, n, buf, pos)
    buf[pos : pos + n] = chunk
    return pos + n


def ack(offset, window, phase):
    return cbor.dumps([codes.MSG_ACK, offset, window, phase])


def status(body, sig):
    return cbor.dumps([codes.MSG_STATUS, body, sig])


def progress(phase, done, total):
    return cbor.dumps([codes.MSG_PROGRESS, phase, done, total])


def end(wire_len):
    return cbor.dumps([codes.MSG_END, wire_len])


def result(req, code, detail=0):
    return cbor.dumps([codes.MSG_RESULT, req, code, detail])


def activate():
    return cbor.dumps([codes.MSG_ACTIVATE])


def reboot():
    return cbor.dumps([codes.MSG_REBOOT])


def confirm():
    return cbor.dumps([codes.MSG_CONFIRM])


def revert():
    return cbor.dumps([codes.MSG_REVERT])


def abort():
    return cbor.dumps([codes.MSG_ABORT])


def error(code, detail=0):
    return cbor.dumps([codes.MSG_ERROR, code, detail])


def status_req(nonce):
    return cbor.dumps([codes.MSG_STATUS_REQ, nonce])


# ---- validation helpers -------------------------------------------------------------------------
# Field specs: (kind, lo, hi). uint: value in [lo, hi]; bstr/tstr: length in [lo, hi].
_U = const(0)
_B = const(1)
_T = const(2)
_SIGS = const(3)

_UINT = (_U, 0, MAX_UINT)
_NONCE = (_B, NONCE_LEN, NONCE_LEN)
_SIG = (_B, SIG_LEN, SIG_LEN)

SPECS = {
    codes.MSG_HELLO: (_UINT, _NONCE, (_U, codes.MIN_PAYLOAD, MAX_UINT)),
    codes.MSG_INFO: ((_B, 1, MAX_BODY), _SIG),
    codes.MSG_BEGIN: (
        (_B, 1, MAX_INSTR),
        (_SIGS, 0, MAX_SIGS),
        _UINT,
        (_B, SHA256_LEN, SHA256_LEN),
        (_U, codes.COMP_NONE, codes.COMP_DEFLATE),
        _UINT,
    ),
    codes.MSG_DATA: (_UINT, (_B, 1, MAX_DATA)),
    codes.MSG_ACK: (_UINT, _UINT, _UINT),
    codes.MSG_STATUS: ((_B, 1, MAX_BODY), _SIG),
    codes.MSG_PROGRESS: (_UINT, _UINT, _UINT),
    codes.MSG_END: (_UINT,),
    codes.MSG_RESULT: (_UINT, _UINT, _UINT),
    codes.MSG_ACTIVATE: (),
    codes.MSG_REBOOT: (),
    codes.MSG_CONFIRM: (),
    codes.MSG_REVERT: (),
    codes.MSG_ABORT: (),
    codes.MSG_ERROR: (_UINT, _UINT),
    codes.MSG_STATUS_REQ: (_NONCE,),
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
            raise ProtocolError(_E_BIG if err == _E_BAD else err, idx)
        if n < lo:
            raise ProtocolError(err, idx)
    else:  # _SIGS: array of [keyid bstr(8), sig bstr(64)]
        if not isinstance(v, list):
            raise ProtocolError(err, idx)
        if len(v) > hi:
            raise ProtocolError(_E_BIG if err == _E_BAD else err, idx)
        for pair in v:
            if (
                not isinstance(pair, list)
                or len(pair) != 2
                or not _is_bytes(pair[0])
                or len(pair[0]) != KEYID_LEN
                or not _is_bytes(pair[1])
                or len(pair[1]) != SIG_LEN
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
    E_UNKNOWN_TYPE: type not in codes.MSG_*; E_TOO_LARGE: a length over its bound.
    """
    msg = cbor.loads(payload, copy)
    if not isinstance(msg, list) or not msg:
        raise ProtocolError(_E_BAD, 0)
    t = msg[0]
    if not _is_uint(t):
        raise ProtocolError(_E_BAD, 0)
    spec = SPECS.get(t)
    if spec is None:
        raise ProtocolError(codes.E_UNKNOWN_TYPE, t if t <= 0xFFFF else 0)
    if len(msg) != len(spec) + 1:
        raise ProtocolError(_E_BAD, len(msg))
    i = 1
    for s in spec:
        _check(msg[i], s, i, _E_BAD)
        i += 1
    return msg


# ---- install instruction ----------------------------------------------------------------------


def encode_instruction(
    ecu_id, hw_id, version, release_counter, image_len, sha256, issued, expires, target, kind
):
    out = cbor.dumps(
        [
            INSTR_FMT,
            ecu_id,
            hw_id,
            version,
            release_counter,
            image_len,
            bytes(sha256),
            issued,
            expires,
            target,
            kind,
        ]
    )
    decode_instruction(out)  # the builder never emits what the device would reject
    return out


def decode_instruction(data):
    """Decode and validate an install instruction; any problem is E_BAD_INSTRUCTION (detail =
    field index, or 0xFF for CBOR-level problems)."""
    err = codes.E_BAD_INSTRUCTION
    if len(data) > MAX_INSTR:
        raise ProtocolError(err, 0xFF)
    try:
        v = cbor.loads(data)
    except ProtocolError:
        raise ProtocolError(err, 0xFF)
    if not isinstance(v, list) or len(v) != 11:
        raise ProtocolError(err, 0xFF)
    if v[I_FMT] != INSTR_FMT or not _is_uint(v[I_FMT]):
        raise ProtocolError(err, I_FMT)
    _check_text(v[I_ECU_ID], MAX_ID, I_ECU_ID, err)
    _check_text(v[I_HW_ID], MAX_ID, I_HW_ID, err)
    _check_text(v[I_VERSION], MAX_ID, I_VERSION, err)
    if not v[I_ECU_ID] or not v[I_HW_ID] or not v[I_VERSION]:
        raise ProtocolError(err, I_ECU_ID)
    for i in (I_RELEASE, I_IMAGE_LEN, I_ISSUED, I_EXPIRES):
        if not _is_uint(v[i]):
            raise ProtocolError(err, i)
    _check(v[I_SHA256], (_B, SHA256_LEN, SHA256_LEN), I_SHA256, err)
    _check_text(v[I_TARGET], MAX_TARGET, I_TARGET, err)
    if not _is_uint(v[I_KIND]) or v[I_KIND] > KIND_FIRMWARE:
        raise ProtocolError(err, I_KIND)
    return v


# ---- report body (INFO / STATUS) ----------------------------------------------------------------


def encode_report(
    ecu_id,
    hw_id,
    nonce,
    active_slot,
    boot_state,
    last_error,
    slots,
    caps,
    transfer,
    release_floor,
    trusted_time,
    trial_boots,
    proto_ver=codes.PROTOCOL_VERSION,
):
    """slots: 2 x [state, version, release_counter, image_len, sha256 (32 bytes or b"")];
    caps: 7 uints (see C_*); transfer: [phase, wire_offset, wire_len, image_len]."""
    out = cbor.dumps(
        [
            proto_ver,
            ecu_id,
            hw_id,
            nonce,
            active_slot,
            boot_state,
            last_error,
            [list(s) for s in slots],
            list(caps),
            list(transfer),
            release_floor,
            trusted_time,
            trial_boots,
        ]
    )
    decode_report(out)
    return out


def decode_report(data):
    """Decode and validate a report body; E_BAD_MESSAGE / E_TOO_LARGE (detail = field index)."""
    if len(data) > MAX_BODY:
        raise ProtocolError(_E_BIG, 0)
    v = cbor.loads(data)
    err = _E_BAD
    if not isinstance(v, list) or len(v) != 13:
        raise ProtocolError(err, 0xFF)
    for i in (R_PROTO, R_LAST_ERROR, R_RELEASE_FLOOR, R_TRUSTED_TIME, R_TRIAL_BOOTS):
        _check(v[i], _UINT, i, err)
    _check(v[R_ECU_ID], (_T, 0, MAX_ID), R_ECU_ID, err)
    _check(v[R_HW_ID], (_T, 0, MAX_ID), R_HW_ID, err)
    _check(v[R_NONCE], _NONCE, R_NONCE, err)
    _check(v[R_ACTIVE_SLOT], (_U, 0, 1), R_ACTIVE_SLOT, err)
    _check(v[R_BOOT_STATE], (_U, 0, codes.BOOT_REVERTED), R_BOOT_STATE, err)
    slots = v[R_SLOTS]
    if not isinstance(slots, list) or len(slots) != 2:
        raise ProtocolError(err, R_SLOTS)
    for s in slots:
        if not isinstance(s, list) or len(s) != 5:
            raise ProtocolError(err, R_SLOTS)
        _check(s[S_STATE], (_U, 0, codes.SLOT_REJECTED), R_SLOTS, err)
        _check(s[S_VERSION], (_T, 0, MAX_ID), R_SLOTS, err)
        _check(s[S_RELEASE], _UINT, R_SLOTS, err)
        _check(s[S_IMAGE_LEN], _UINT, R_SLOTS, err)
        _check(s[S_SHA256], (_B, 0, SHA256_LEN), R_SLOTS, err)
        if len(s[S_SHA256]) not in (0, SHA256_LEN):
            raise ProtocolError(err, R_SLOTS)
    for i, n in ((R_CAPS, 7), (R_TRANSFER, 4)):
        a = v[i]
        if not isinstance(a, list) or len(a) != n:
            raise ProtocolError(err, i)
        for x in a:
            _check(x, _UINT, i, err)
    return v
