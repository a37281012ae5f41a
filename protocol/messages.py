# Message builders and validating parsers (docs/protocol.md, "Messages").
#
# Every payload is one CBOR array [type, ...fields] with integer codes (codes.MSG_*).
# Builders return payload bytes (frame them with frame.frame / frame.encode_frame); the hot-path
# builders data_into / ack_into write into a caller's buffer and allocate nothing.
# parse(payload) returns the validated list; byte strings in it are bytes on CPython and
# memoryview slices of payload on MicroPython (copy what you keep past the next frame).
# DataView parses DATA frames without allocating (the device's per-frame path).
# Change: DataView and ack_into are defined in hotpath.py, parse / SPECS / decode_instruction in
# wire.py (same names here). The device never imports this module: it loads hotpath.py while
# serving, wire.py for BEGIN and protocol/command.py for a signed command. The report codec
# (encode_report / decode_report) lives here again: the device builds its reports with
# device/report.py, so keeping it out of wire.py keeps ~1.7 KB out of the device's heap at BEGIN.
from otalink.protocol import cbor, codes
from otalink.protocol import command as _command

# What the device keeps loaded while receiving lives in datapath.py; re-exported here unchanged.
from otalink.protocol.datapath import DataView, ack_into  # noqa: F401
from otalink.protocol.errors import ProtocolError
from otalink.protocol.hotpath import put_head as _put_head

# Parsers and the signed-body codecs live in wire.py (what the device loads); same names here.
from otalink.protocol.wire import (  # noqa: F401
    SPECS,
    _check,
    decode_instruction,
    parse,
)

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
MAX_CMD = const(96)  # a command's signed bytes
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
R_CMD_NONCE = const(13)  # the nonce the next signed command must carry
R_AGENT_VERSION = const(14)  # the version of the agent that answers (issue 11)
R_APP = const(15)  # the application: [app_state (codes.APP_*), fault, wdt_trips]
# app entry [app_state, fault, wdt_trips]
A_STATE = const(0)
A_FAULT = const(1)
A_WDT_TRIPS = const(2)
REPORT_ITEMS = const(16)
MAX_APP_DATA = const(256)  # codes.APP_MAX_DATA: an APP message's data
MAX_DEFER_REASON = const(48)  # codes.DEFER_MAX_REASON: a DEFER's reason text
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
I_BASE_SHA256 = const(11)  # format 2 only: the base image a patch applies to
INSTR_FMT = const(1)
INSTR_FMT_DELTA = const(2)  # format 1's fields + base_sha256
KIND_APP = const(0)
KIND_FIRMWARE = const(1)

# Signed command bytes [fmt, type, ecu_id, cmd_nonce] (docs/protocol.md "Signed commands").
CMD_FMT = const(1)
CM_FMT = const(0)
CM_TYPE = const(1)
CM_ECU_ID = const(2)
CM_NONCE = const(3)
COMMANDS = (
    codes.MSG_ACTIVATE,
    codes.MSG_REBOOT,
    codes.MSG_CONFIRM,
    codes.MSG_REVERT,
    codes.MSG_ABORT,
)

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


def result(req, code, detail, cmd_nonce):
    """RESULT of request type ``req``; ``cmd_nonce``: the device's command nonce after it."""
    return cbor.dumps([codes.MSG_RESULT, req, code, detail, cmd_nonce])


def encode_command(mtype, ecu_id, cmd_nonce):
    """The exact bytes a command key signs: [CMD_FMT, mtype, ecu_id, cmd_nonce]."""
    out = cbor.dumps([CMD_FMT, mtype, ecu_id, bytes(cmd_nonce)])
    decode_command(out)  # the builder never emits what the device would reject
    return out


def decode_command(data):
    """The signed bytes of a command, [CMD_FMT, type, ecu_id, cmd_nonce] (type a command's,
    ecu_id 1..32 bytes of UTF-8, cmd_nonce 16 bytes), in the profile's one encoding: the
    device's own parser (protocol/command.py) decides; anything else is E_BAD_MESSAGE, 0xFF."""
    f = _command.fields(data) if len(data) <= MAX_CMD else None
    if f is None:
        raise ProtocolError(_E_BAD, 0xFF)
    try:
        ecu_id = str(f[1], "utf-8")
    except UnicodeError:
        raise ProtocolError(_E_BAD, 0xFF) from None
    return [CMD_FMT, f[0], ecu_id, f[2]]


def command(mtype, cmd, keyid, sig):
    """A signed command (ACTIVATE, REBOOT, CONFIRM, REVERT, ABORT): [mtype, cmd, keyid, sig],
    ``cmd`` from encode_command(), ``sig`` = ed25519 over exactly those bytes."""
    return cbor.dumps([mtype, cmd, keyid, sig])


def error(code, detail=0, req=0):
    """ERROR answering request type ``req`` (0: not known, or sent by the host)."""
    return cbor.dumps([codes.MSG_ERROR, code, detail, req])


def status_req(nonce):
    return cbor.dumps([codes.MSG_STATUS_REQ, nonce])


def app(chan, msg_id, payload):
    """APP on the application channel: a host request (``msg_id`` >= 1), the device's reply
    (the request's id) or an ECU-initiated event (id 0); ``payload`` <= 256 bytes."""
    return cbor.dumps([codes.MSG_APP, chan, msg_id, bytes(payload)])


def defer(req, retry_after_s, reason):
    """DEFER: the application deferred request type ``req`` (BEGIN) for ``reason``."""
    return cbor.dumps([codes.MSG_DEFER, req, retry_after_s, reason])


def probe(image_len, sha256, compression, wire_len):
    """PROBE: a receive probe (host -> device), or what the device decoded (its answer to END
    during a probe): the same four fields."""
    return cbor.dumps([codes.MSG_PROBE, image_len, bytes(sha256), compression, wire_len])


# ---- install instruction ----------------------------------------------------------------------


def encode_instruction(
    ecu_id,
    hw_id,
    version,
    release_counter,
    image_len,
    sha256,
    issued,
    expires,
    target,
    kind,
    base_sha256=None,
):
    """The instruction's exact bytes: format 1, or format 2 when ``base_sha256`` binds the base
    image a patch of this result may be applied to (docs/protocol.md "Install instruction")."""
    v = [
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
    if base_sha256 is not None:
        v[0] = INSTR_FMT_DELTA
        v.append(bytes(base_sha256))
    out = cbor.dumps(v)
    decode_instruction(out)  # the builder never emits what the device would reject
    return out


# ---- report body (INFO / STATUS) --------------------------------------------------------------
# (field specs as wire._check takes them: (kind, lo, hi), kind 0 uint, 1 bstr, 2 tstr)
_UINT_SPEC = (0, 0, MAX_UINT)
_NONCE_SPEC = (1, NONCE_LEN, NONCE_LEN)


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
    cmd_nonce,
    proto_ver=codes.PROTOCOL_VERSION,
    agent_version="",
    app=(0, 0, 0),
):
    """slots: 2 x [state, version, release_counter, image_len, sha256 (32 bytes or b"")];
    caps: 7 uints (see C_*); transfer: [phase, wire_offset, wire_len, image_len]; cmd_nonce:
    the 16 bytes the next signed command must carry; agent_version: the answering agent's
    version text; app: [app_state, fault, wdt_trips] (A_*)."""
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
            cmd_nonce,
            agent_version,
            list(app),
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
    if not isinstance(v, list) or len(v) != REPORT_ITEMS:
        raise ProtocolError(err, 0xFF)
    for i in (R_PROTO, R_LAST_ERROR, R_RELEASE_FLOOR, R_TRUSTED_TIME, R_TRIAL_BOOTS):
        _check(v[i], _UINT_SPEC, i, err)
    _check(v[R_ECU_ID], (2, 0, MAX_ID), R_ECU_ID, err)
    _check(v[R_HW_ID], (2, 0, MAX_ID), R_HW_ID, err)
    _check(v[R_NONCE], _NONCE_SPEC, R_NONCE, err)
    _check(v[R_CMD_NONCE], _NONCE_SPEC, R_CMD_NONCE, err)
    _check(v[R_ACTIVE_SLOT], (0, 0, 1), R_ACTIVE_SLOT, err)
    _check(v[R_BOOT_STATE], (0, 0, codes.BOOT_REVERTED), R_BOOT_STATE, err)
    slots = v[R_SLOTS]
    if not isinstance(slots, list) or len(slots) != 2:
        raise ProtocolError(err, R_SLOTS)
    for s in slots:
        if not isinstance(s, list) or len(s) != 5:
            raise ProtocolError(err, R_SLOTS)
        _check(s[S_STATE], (0, 0, codes.SLOT_REJECTED), R_SLOTS, err)
        _check(s[S_VERSION], (2, 0, MAX_ID), R_SLOTS, err)
        _check(s[S_RELEASE], _UINT_SPEC, R_SLOTS, err)
        _check(s[S_IMAGE_LEN], _UINT_SPEC, R_SLOTS, err)
        _check(s[S_SHA256], (1, 0, SHA256_LEN), R_SLOTS, err)
        if len(s[S_SHA256]) not in (0, SHA256_LEN):
            raise ProtocolError(err, R_SLOTS)
    _check(v[R_AGENT_VERSION], (2, 0, MAX_ID), R_AGENT_VERSION, err)
    for i, n in ((R_CAPS, 7), (R_TRANSFER, 4), (R_APP, 3)):
        a = v[i]
        if not isinstance(a, list) or len(a) != n:
            raise ProtocolError(err, i)
        for x in a:
            _check(x, _UINT_SPEC, i, err)
    return v
