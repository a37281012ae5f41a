"""Type stub for codes.py (kept in sync by tests/protocol/test_stubs.py)."""

from typing import Final

PROTOCOL_VERSION: Final = 2

# ---- framing ---------------------------------------------------------------
SOF0: Final = 0xA5
SOF1: Final = 0x5A
HEADER_LEN: Final = 6
TRAILER_LEN: Final = 4
FRAME_OVERHEAD: Final = 10
MAX_PAYLOAD_ABS: Final = 8192
DEFAULT_PAYLOAD: Final = 4096
MIN_PAYLOAD: Final = 256

# ---- message types (first element of every CBOR array) ----------------------
MSG_HELLO: Final = 0x01
MSG_BEGIN: Final = 0x03
MSG_DATA: Final = 0x04
MSG_END: Final = 0x08
MSG_ACTIVATE: Final = 0x0A
MSG_REBOOT: Final = 0x0B
MSG_CONFIRM: Final = 0x0C
MSG_REVERT: Final = 0x0D
MSG_ABORT: Final = 0x0E
MSG_STATUS_REQ: Final = 0x10
MSG_PROBE: Final = 0x13
MSG_INFO: Final = 0x02
MSG_ACK: Final = 0x05
MSG_STATUS: Final = 0x06
MSG_PROGRESS: Final = 0x07
MSG_RESULT: Final = 0x09
MSG_DEFER: Final = 0x12
MSG_ERROR: Final = 0x0F
MSG_APP: Final = 0x11
APP_MAX_DATA: Final = 256
APP_MAX_CHAN: Final = 255
DEFER_MAX_REASON: Final = 48

# ---- compression -------------------------------------------------------------
COMP_NONE: Final = 0
COMP_DEFLATE: Final = 1
COMP_DEFLATE_SEG: Final = 2
COMP_PATCH: Final = 3
COMP_PATCH_DEFLATE_SEG: Final = 4

# ---- INFO caps flags (bits of caps[6]) ----------------------------------------
CAP_DEFLATE_SEG: Final = 1
CAP_PATCH: Final = 2

# ---- error codes (cross the wire as integers) -------------------------------
OK: Final = 0
E_BAD_MESSAGE: Final = 10
E_UNKNOWN_TYPE: Final = 11
E_BAD_STATE: Final = 12
E_TOO_LARGE: Final = 13
E_VERSION: Final = 14
E_FRAME: Final = 15
E_CRC: Final = 16
E_OUT_OF_WINDOW: Final = 20
E_BAD_OFFSET: Final = 21
E_WIRE_LENGTH: Final = 22
E_SIG_INVALID: Final = 30
E_KEY_UNKNOWN: Final = 31
E_ECU_MISMATCH: Final = 32
E_HW_MISMATCH: Final = 33
E_ROLLBACK: Final = 34
E_EXPIRED: Final = 35
E_IMAGE_TOO_LARGE: Final = 36
E_HASH_MISMATCH: Final = 37
E_LENGTH_MISMATCH: Final = 38
E_BAD_INSTRUCTION: Final = 39
E_FLASH: Final = 40
E_DECOMPRESS: Final = 41
E_NO_IMAGE: Final = 42
E_BUSY: Final = 43
E_BASE_MISMATCH: Final = 44
E_PATCH: Final = 45
E_SELFTEST: Final = 50
E_BOOT_CRASH: Final = 51
E_NOT_CONFIRMED: Final = 52
E_WATCHDOG: Final = 53
E_APP_CRASH: Final = 54
E_APP_MEMORY: Final = 55
E_APP_FAILED: Final = 56
E_AGENT_FAILED: Final = 57
E_NOT_HEALTHY: Final = 58
E_NOT_SAFE: Final = 59
E_TIMEOUT: Final = 60
E_ABORTED: Final = 61
E_INTERNAL: Final = 63
INTERNAL_NO_MEMORY: Final = 1
E_PROBE_FAILED: Final = 64
E_CMD_AUTH: Final = 70
E_CMD_REPLAY: Final = 71
E_CMD_TARGET: Final = 72
E_APP_CHANNEL: Final = 80
E_APP_BUSY: Final = 81
E_DEFERRED: Final = 82

# ---- slot states (persisted) --------------------------------------------------
SLOT_EMPTY: Final = 0
SLOT_RECEIVING: Final = 1
SLOT_VERIFIED: Final = 2
SLOT_PENDING: Final = 3
SLOT_TRIAL: Final = 4
SLOT_CONFIRMED: Final = 5
SLOT_REJECTED: Final = 6

# ---- device session phases (ACK/PROGRESS "phase") -----------------------------
PH_IDLE: Final = 0
PH_RECEIVING: Final = 1
PH_ERASING: Final = 2
PH_VERIFYING: Final = 3
PH_VERIFIED: Final = 4
PH_ACTIVATED: Final = 5
PH_TRIAL: Final = 6
PH_CONFIRMED: Final = 7

# ---- boot state (INFO) ----------------------------------------------------------
BOOT_NORMAL: Final = 0
BOOT_TRIAL: Final = 1
BOOT_REVERTED: Final = 2

# ---- application state -------------------------------------------------------------
APP_NONE: Final = 0
APP_STARTED: Final = 1
APP_HEALTHY: Final = 2
APP_FAILED: Final = 3

# ---- timeouts (ms) ----------------------------------------------------------------
T_REPLY_MS: Final = 2000
T_FIRST_DATA_MS: Final = 30000
T_IDLE_MS: Final = 60000
