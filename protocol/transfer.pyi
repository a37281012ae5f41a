from typing import Final

ACCEPT: Final = 0
DUP: Final = 1
GAP: Final = 2
OUT_OF_WINDOW: Final = 3
RESEND: Final = 4
RECOVER: Final = 5
DATA_OVERHEAD: Final = 16
MIN_CHUNK: Final = 64
GROW_AFTER: Final = 8
MIN_RTO: Final = 0.1

class TxWindow:
    wire_len: int
    max_chunk: int
    min_chunk: int
    reply_timeout: float
    first_timeout: float
    stall_timeout: float
    byte_time: float
    chunk: int
    cwnd: int
    acked: int
    acked_max: int
    window_end: int
    next_offset: int
    sent_max: int
    in_flight: int
    stale: int
    clean: int
    frames: int
    retransmitted: int
    rewinds: int
    timeouts: int
    max_frame: int
    flush_bytes: int
    resumed_from: int
    rewound_to: int
    rewound_at: float
    begun: bool
    begin_at: float
    heard_at: float
    advanced_at: float
    srtt: float
    rttvar: float
    rto: float
    base_rto: float
    def __init__(
        self,
        wire_len: int,
        chunk: int,
        reply_timeout: float = ...,
        first_timeout: float = ...,
        stall_timeout: float = ...,
        byte_time: float = ...,
    ) -> None: ...
    @property
    def done(self) -> bool: ...
    @property
    def limit(self) -> int: ...
    def start(self, now: float, offset: int = 0, window: int = 0) -> None: ...
    def next_range(self, now: float) -> tuple[int, int] | None: ...
    def on_begin_ack(self, offset: int, window: int, now: float) -> None: ...
    def on_ack(self, offset: int, window: int, now: float) -> bool: ...
    def on_window_error(self, now: float) -> None: ...
    def heard(self, now: float) -> None: ...
    def deadline(self, now: float) -> float: ...
    def on_timeout(self, now: float) -> int: ...
    def overdue(self, now: float) -> bool: ...

class RxWindow:
    window: int
    wire_len: int
    expected: int
    def __init__(self, window: int, wire_len: int = ..., expected: int = 0) -> None: ...
    def resume(self, offset: int) -> None: ...
    def classify(self, offset: int, n: int) -> int: ...
    def accept(self, n: int) -> int: ...
