"""Type stub for messages.py (kept in sync by tests/protocol/test_stubs.py)."""

from collections.abc import Sequence
from typing import Any, Final

Buffer = bytes | bytearray | memoryview

NONCE_LEN: Final = 16
SIG_LEN: Final = 64
KEYID_LEN: Final = 8
SHA256_LEN: Final = 32
MAX_INSTR: Final = 512
MAX_SIGS: Final = 4
MAX_BODY: Final = 1024
MAX_ID: Final = 32
MAX_TARGET: Final = 64
MAX_CMD: Final = 96
DATA_OVERHEAD: Final = 16
MAX_DATA: Final = 8176
MAX_UINT: Final = 0xFFFFFFFF
R_PROTO: Final = 0
R_ECU_ID: Final = 1
R_HW_ID: Final = 2
R_NONCE: Final = 3
R_ACTIVE_SLOT: Final = 4
R_BOOT_STATE: Final = 5
R_LAST_ERROR: Final = 6
R_SLOTS: Final = 7
R_CAPS: Final = 8
R_TRANSFER: Final = 9
R_RELEASE_FLOOR: Final = 10
R_TRUSTED_TIME: Final = 11
R_TRIAL_BOOTS: Final = 12
R_CMD_NONCE: Final = 13
R_AGENT_VERSION: Final = 14
R_APP: Final = 15
A_STATE: Final = 0
A_FAULT: Final = 1
A_WDT_TRIPS: Final = 2
REPORT_ITEMS: Final = 16
MAX_APP_DATA: Final = 256
MAX_DEFER_REASON: Final = 48
S_STATE: Final = 0
S_VERSION: Final = 1
S_RELEASE: Final = 2
S_IMAGE_LEN: Final = 3
S_SHA256: Final = 4
C_MAX_PAYLOAD: Final = 0
C_WINDOW: Final = 1
C_SLOT_SIZE: Final = 2
C_ERASE_SIZE: Final = 3
C_WRITE_SIZE: Final = 4
C_DEFLATE_WBITS: Final = 5
C_FLAGS: Final = 6
T_PHASE: Final = 0
T_WIRE_OFFSET: Final = 1
T_WIRE_LEN: Final = 2
T_IMAGE_LEN: Final = 3
I_FMT: Final = 0
I_ECU_ID: Final = 1
I_HW_ID: Final = 2
I_VERSION: Final = 3
I_RELEASE: Final = 4
I_IMAGE_LEN: Final = 5
I_SHA256: Final = 6
I_ISSUED: Final = 7
I_EXPIRES: Final = 8
I_TARGET: Final = 9
I_KIND: Final = 10
I_BASE_SHA256: Final = 11
INSTR_FMT: Final = 1
INSTR_FMT_DELTA: Final = 2
KIND_APP: Final = 0
KIND_FIRMWARE: Final = 1
CMD_FMT: Final = 1
CM_FMT: Final = 0
CM_TYPE: Final = 1
CM_ECU_ID: Final = 2
CM_NONCE: Final = 3
COMMANDS: tuple[int, ...]

SPECS: dict[int, tuple[tuple[int, int, int], ...]]

def hello(nonce: Buffer, max_payload: int, proto_ver: int = ...) -> bytes: ...
def info(body: Buffer, sig: Buffer) -> bytes: ...
def begin(
    instr: Buffer,
    sigs: Sequence[Sequence[Buffer]],
    image_len: int,
    sha256: Buffer,
    compression: int,
    wire_len: int,
) -> bytes: ...
def data(offset: int, chunk: Buffer) -> bytes: ...
def data_into(buf: bytearray | memoryview, pos: int, offset: int, chunk: Buffer) -> int: ...
def ack(offset: int, window: int, phase: int) -> bytes: ...
def ack_into(
    buf: bytearray | memoryview, pos: int, offset: int, window: int, phase: int
) -> int: ...
def status(body: Buffer, sig: Buffer) -> bytes: ...
def progress(phase: int, done: int, total: int) -> bytes: ...
def end(wire_len: int) -> bytes: ...
def result(req: int, code: int, detail: int, cmd_nonce: Buffer) -> bytes: ...
def encode_command(mtype: int, ecu_id: str, cmd_nonce: Buffer) -> bytes: ...
def command(mtype: int, cmd: Buffer, keyid: Buffer, sig: Buffer) -> bytes: ...
def decode_command(data: Buffer) -> list[Any]: ...
def error(code: int, detail: int = 0, req: int = 0) -> bytes: ...
def status_req(nonce: Buffer) -> bytes: ...
def app(chan: int, msg_id: int, payload: Buffer) -> bytes: ...
def defer(req: int, retry_after_s: int, reason: str) -> bytes: ...
def probe(image_len: int, sha256: Buffer, compression: int, wire_len: int) -> bytes: ...
def parse(payload: Buffer, copy: bool | None = None) -> list[Any]: ...

class DataView:
    offset: int
    data: memoryview | None
    def __init__(self) -> None: ...
    def parse(self, mv: memoryview) -> bool: ...

def encode_instruction(
    ecu_id: str,
    hw_id: str,
    version: str,
    release_counter: int,
    image_len: int,
    sha256: Buffer,
    issued: int,
    expires: int,
    target: str,
    kind: int,
    base_sha256: Buffer | None = None,
) -> bytes: ...
def decode_instruction(data: Buffer) -> list[Any]: ...
def encode_report(
    ecu_id: str,
    hw_id: str,
    nonce: Buffer,
    active_slot: int,
    boot_state: int,
    last_error: int,
    slots: Sequence[Sequence[Any]],
    caps: Sequence[int],
    transfer: Sequence[int],
    release_floor: int,
    trusted_time: int,
    trial_boots: int,
    cmd_nonce: Buffer,
    proto_ver: int = ...,
    agent_version: str = ...,
    app: Sequence[int] = ...,
) -> bytes: ...
def decode_report(data: Buffer) -> list[Any]: ...
