# Integer codes of the otalink wire protocol: message types, error codes, states.
# The single source of truth for both runtimes; docs/protocol.md explains each.
# const() keeps these as compile-time integers in .mpy files on the ECU.
try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


PROTOCOL_VERSION = const(1)

# ---- framing ---------------------------------------------------------------
SOF0 = const(0xA5)
SOF1 = const(0x5A)
HEADER_LEN = const(6)  # SOF0 SOF1 LEN(u16 LE) ~LEN(u16 LE)
TRAILER_LEN = const(4)  # CRC-32 LE over LEN, ~LEN and payload
FRAME_OVERHEAD = const(10)
MAX_PAYLOAD_ABS = const(8192)  # no implementation accepts a larger payload
DEFAULT_PAYLOAD = const(4096)  # negotiated down to min(host, device)
MIN_PAYLOAD = const(256)

# ---- message types (first element of every CBOR array) ----------------------
# Host -> device
MSG_HELLO = const(0x01)  # [1, proto_ver, nonce(bstr16), host_max_payload]
# [3, instr(bstr), sigs([[keyid(bstr8), sig(bstr64)], ..<=4]), image_len, sha256(bstr32),
#  compression, wire_len]
MSG_BEGIN = const(0x03)
MSG_DATA = const(0x04)  # [4, offset, bytes]
MSG_END = const(0x08)  # [8, wire_len]
MSG_ACTIVATE = const(0x0A)  # [10]
MSG_REBOOT = const(0x0B)  # [11]
MSG_CONFIRM = const(0x0C)  # [12]
MSG_REVERT = const(0x0D)  # [13]
MSG_ABORT = const(0x0E)  # [14]
MSG_STATUS_REQ = const(0x10)  # [16, nonce(bstr16)]  -> signed STATUS
# Device -> host
MSG_INFO = const(0x02)  # [2, body(bstr: CBOR array), sig(bstr64)]
MSG_ACK = const(0x05)  # [5, offset, window, phase]
MSG_STATUS = const(0x06)  # [6, body(bstr), sig(bstr64)]  (same body layout as INFO)
MSG_PROGRESS = const(0x07)  # [7, phase, done, total]
MSG_RESULT = const(0x09)  # [9, request_type, code, detail]
# Either direction
MSG_ERROR = const(0x0F)  # [15, code, detail]

# ---- compression -------------------------------------------------------------
COMP_NONE = const(0)
COMP_DEFLATE = const(1)  # raw deflate (RFC 1951), window <= 2**wbits announced in INFO
# resumable deflate segments: [u32 LE length][complete raw-deflate stream] ..., each stream
# decoding to a multiple of 4 KiB (16 KiB by default; the last: the rest); the device
# checkpoints at segment ends, so a transfer resumes after a reboot (docs/device.md)
COMP_DEFLATE_SEG = const(2)

# ---- INFO caps flags (bits of caps[6]) --------------------------------------------
CAP_DEFLATE_SEG = const(1)  # bit 0: compression COMP_DEFLATE_SEG accepted

# ---- error codes (cross the wire as integers) -------------------------------
OK = const(0)
# framing / protocol (1x)
E_BAD_MESSAGE = const(10)  # CBOR outside the profile, wrong arity or field type
E_UNKNOWN_TYPE = const(11)
E_BAD_STATE = const(12)  # message not valid in the session's current state
E_TOO_LARGE = const(13)  # a declared length over its bound
E_VERSION = const(14)  # protocol version not supported
E_FRAME = const(15)  # framing error (counted by receivers, not normally sent)
E_CRC = const(16)  # CRC mismatch (counted by receivers, not normally sent)
# transfer (2x)
E_OUT_OF_WINDOW = const(20)  # DATA beyond offset + window
E_BAD_OFFSET = const(21)  # DATA not at the device's expected offset
E_WIRE_LENGTH = const(22)  # END's wire_len disagrees with BEGIN / bytes received
# authenticity and policy (3x): nothing failing these is ever activated
E_SIG_INVALID = const(30)
E_KEY_UNKNOWN = const(31)
E_ECU_MISMATCH = const(32)
E_HW_MISMATCH = const(33)
E_ROLLBACK = const(34)  # release counter not strictly greater than persisted
E_EXPIRED = const(35)  # instruction expired w.r.t. latest trusted time
E_IMAGE_TOO_LARGE = const(36)
E_HASH_MISMATCH = const(37)
E_LENGTH_MISMATCH = const(38)
E_BAD_INSTRUCTION = const(39)
# flash / slots (4x)
E_FLASH = const(40)
E_DECOMPRESS = const(41)
E_NO_IMAGE = const(42)  # ACTIVATE/CONFIRM with no suitable slot
E_BUSY = const(43)  # BEGIN while another transfer is active
# boot / trial (5x): reasons a trial slot was rolled back
E_SELFTEST = const(50)
E_BOOT_CRASH = const(51)
E_NOT_CONFIRMED = const(52)
# session (6x)
E_TIMEOUT = const(60)
E_ABORTED = const(61)
E_INTERNAL = const(63)

# ---- slot states (persisted) --------------------------------------------------
SLOT_EMPTY = const(0)
SLOT_RECEIVING = const(1)
SLOT_VERIFIED = const(2)
SLOT_PENDING = const(3)  # activated, next boot runs it on trial
SLOT_TRIAL = const(4)  # booted on trial, awaiting CONFIRM
SLOT_CONFIRMED = const(5)
SLOT_REJECTED = const(6)

# ---- device session phases (ACK/PROGRESS "phase") -----------------------------
PH_IDLE = const(0)
PH_RECEIVING = const(1)
PH_ERASING = const(2)
PH_VERIFYING = const(3)
PH_VERIFIED = const(4)
PH_ACTIVATED = const(5)
PH_TRIAL = const(6)
PH_CONFIRMED = const(7)

# ---- boot state (INFO) ----------------------------------------------------------
BOOT_NORMAL = const(0)
BOOT_TRIAL = const(1)
BOOT_REVERTED = const(2)  # last trial was rolled back; reason in last_error

# ---- timeouts (ms) ----------------------------------------------------------------
T_REPLY_MS = const(2000)  # any request -> its reply
T_FIRST_DATA_MS = const(30000)  # BEGIN -> first ACK may wait for a slot erase
T_IDLE_MS = const(60000)  # device drops an idle transfer session back to IDLE (keeps offset)
