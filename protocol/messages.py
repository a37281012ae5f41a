# Message builders and validating parsers (docs/protocol.md, "Messages").
#
# Every payload is one CBOR array [type, ...fields] with integer codes (codes.MSG_*).
# Builders return payload bytes (frame them with frame.frame / frame.encode_frame); the hot-path
# builders data_into / ack_into write into a caller's buffer and allocate nothing.
# parse(payload) returns the validated list; byte strings in it are bytes on CPython and
# memoryview slices of payload on MicroPython (copy what you keep past the next frame).
# DataView parses DATA frames without allocating (the device's per-frame path).
# Change: DataView and ack_into are defined in hotpath.py, parse / SPECS / decode_instruction /
# encode_report / decode_report in wire.py (same names here). The device never imports this
# module: it loads hotpath.py while serving and wire.py for HELLO / STATUS_REQ / BEGIN.
from otalink.protocol import cbor, codes
from otalink.protocol.errors import ProtocolError

# What the device keeps loaded while serving lives in hotpath.py; re-exported here unchanged.
from otalink.protocol.hotpath import DataView, ack_into  # noqa: F401
from otalink.protocol.hotpath import put_head as _put_head

# Parsers and the signed-body codecs live in wire.py (what the device loads); same names here.
from otalink.protocol.wire import (  # noqa: F401
    SPECS,
    decode_instruction,
    decode_report,
    encode_report,
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
