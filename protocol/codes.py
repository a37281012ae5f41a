# Integer codes of the otalink wire protocol: message types, error codes, states.
# The single source of truth for both runtimes; docs/protocol.md explains each.
# const() keeps these as compile-time integers in .mpy files on the ECU.
try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


PROTOCOL_VERSION = const(2)  # 2: signed commands, ERROR names its request, RESULT its nonce

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
# Commands: [type, cmd(bstr <= 96), keyid(bstr8), sig(bstr64)], cmd = CBOR [1, type, ecu_id,
# cmd_nonce(bstr16)] signed by a trusted command key (docs/protocol.md "Signed commands")
MSG_ACTIVATE = const(0x0A)
MSG_REBOOT = const(0x0B)
MSG_CONFIRM = const(0x0C)
MSG_REVERT = const(0x0D)
MSG_ABORT = const(0x0E)
MSG_STATUS_REQ = const(0x10)  # [16, nonce(bstr16)]  -> signed STATUS
# A receive probe: a dry-run transfer (DATA / END as for BEGIN) that writes no flash; END is
# answered with PROBE [19, image_len, sha256, compression, wire_len] of what the device decoded
# (docs/protocol.md "Receive probe"). [19, image_len, sha256(bstr32), compression, wire_len]
MSG_PROBE = const(0x13)
# Device -> host
MSG_INFO = const(0x02)  # [2, body(bstr: CBOR array), sig(bstr64)]
MSG_ACK = const(0x05)  # [5, offset, window, phase]
MSG_STATUS = const(0x06)  # [6, body(bstr), sig(bstr64)]  (same body layout as INFO)
MSG_PROGRESS = const(0x07)  # [7, phase, done, total]
MSG_RESULT = const(0x09)  # [9, request_type, code, detail, cmd_nonce(bstr16)]
MSG_DEFER = const(0x12)  # [18, request_type, retry_after_s, reason(tstr <= 48)]: app deferred
# Either direction
MSG_ERROR = const(0x0F)  # [15, code, detail, request_type (0: unknown / host-originated)]
# The application channel: [17, chan(<= 255), id, data(bstr <= 256)]; a host request has id >= 1
# and its reply the same id, an ECU-initiated event id 0 (docs/protocol.md "Application channel")
MSG_APP = const(0x11)
APP_MAX_DATA = const(256)
APP_MAX_CHAN = const(255)
DEFER_MAX_REASON = const(48)

# ---- compression -------------------------------------------------------------
COMP_NONE = const(0)
COMP_DEFLATE = const(1)  # raw deflate (RFC 1951), window <= 2**wbits announced in INFO
# resumable deflate segments: [u32 LE length][complete raw-deflate stream] ..., each stream
# decoding to a multiple of 4 KiB (16 KiB by default; the last: the rest); the device
# checkpoints at segment ends, so a transfer resumes after a reboot (docs/device.md)
COMP_DEFLATE_SEG = const(2)
# delta updates (docs/adr/0006-delta-updates.md): the wire stream is a detools sequential patch
# (bsdiff, compression none) whose result is the image the instruction names (image_len,
# sha256 = the RESULT's); the instruction must bind the base (format 2: base_sha256) and the
# device applies it against its active slot. 3: the patch raw; 4: the patch in deflate
# segments (as compression 2, each segment's output a run of patch bytes of any length).
COMP_PATCH = const(3)
COMP_PATCH_DEFLATE_SEG = const(4)

# ---- INFO caps flags (bits of caps[6]) --------------------------------------------
CAP_DEFLATE_SEG = const(1)  # bit 0: compression COMP_DEFLATE_SEG accepted
# bit 1: patches applied (COMP_PATCH; COMP_PATCH_DEFLATE_SEG too with bit 0)
CAP_PATCH = const(2)

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
# a patch BEGIN whose instruction binds no base (format 1, detail 0) or another base than the
# active slot's image (detail 1)
E_BASE_MISMATCH = const(44)
E_PATCH = const(45)  # the patch does not parse or not fit (detail = patch offset)
# boot / trial (5x): reasons a trial slot was rolled back
E_SELFTEST = const(50)
E_BOOT_CRASH = const(51)
E_NOT_CONFIRMED = const(52)
E_WATCHDOG = const(53)  # the trial image tripped the watchdog (hung, starved the loop, died)
E_APP_CRASH = const(54)  # the application raised
E_APP_MEMORY = const(55)  # the application ran out of heap (MemoryError)
E_APP_FAILED = const(56)  # the application failed at import
E_AGENT_FAILED = const(57)  # the slot's agent failed at import
E_NOT_HEALTHY = const(58)  # CONFIRM refused: the trial application has not reported healthy
E_NOT_SAFE = const(59)  # ACTIVATE / REBOOT refused: outputs not safe within safe_ms
# session (6x)
E_TIMEOUT = const(60)
E_ABORTED = const(61)
E_INTERNAL = const(63)
# E_INTERNAL's detail when it answers a request (not the application channel, whose detail is
# the channel): the peer ran out of heap (a MemoryError), not a bug; the same request may succeed
# later (e.g. once an application beside the agent holds less)
INTERNAL_NO_MEMORY = const(1)
E_PROBE_FAILED = const(64)  # a receive probe on a trial boot failed (the REVERT's reason)
# command authentication (7x): a refused command changes nothing
E_CMD_AUTH = const(70)  # unsigned, unknown command key or bad signature
E_CMD_REPLAY = const(71)  # signed, but not over the ECU's current command nonce
E_CMD_TARGET = const(72)  # signed for another ECU or another command type
# application channel (8x)
E_APP_CHANNEL = const(80)  # no handler for this channel (detail = channel)
E_APP_BUSY = const(81)  # the application's inbox is full: retry later (detail = channel)
E_DEFERRED = const(82)  # the application deferred the request (DEFER carries the reason)

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

# ---- application state (report field 15: [app_state, fault, wdt_trips]) ----------
APP_NONE = const(0)  # no application (agent-only image, or none imported)
APP_STARTED = const(1)  # running, not (yet) reported healthy
APP_HEALTHY = const(2)  # reported healthy (agent.healthy(True) or its self-test passed)
APP_FAILED = const(3)  # failed (import, crash, self-test): the agent runs alone

# ---- timeouts (ms) ----------------------------------------------------------------
T_REPLY_MS = const(2000)  # any request -> its reply
T_FIRST_DATA_MS = const(30000)  # BEGIN -> first ACK may wait for a slot erase
T_IDLE_MS = const(60000)  # device drops an idle transfer session back to IDLE (keeps offset)
