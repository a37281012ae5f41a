"""Paced, fault-injecting serial line between two pseudo-terminals.

Public interface (stable):
    LineSim(baud: int | None = 115200, latency_s: float = 0.0,
            faults: FaultConfig | None = None, seed: int = 1, tx_buffer: int = 4096)
    .host_path / .device_path       slave pty paths (open the host one with pyserial)
    .start() / .stop() / context manager
    .bytes_h2d / .bytes_d2h         bytes offered to the line by each side
    .delivered_h2d / .delivered_d2h bytes that reached the far side
    .counters() -> dict[str, int | float]
    .faults (settable FaultConfig), .disconnect(), .reconnect(), .stall(seconds, drop=False)
    .flush_device_input()           drop bytes queued toward the device (a reset MCU loses its RX)

Each direction is modelled as a UART: a byte occupies the wire for 10/baud s (8N1), bytes are
serialised back to back (exact time accounting, no per-byte sleeps), arrive ``latency_s`` later,
and the sender sees back-pressure once ``tx_buffer`` bytes wait for the wire, like a driver FIFO.
One thread relays both directions with a selector loop.
"""

from __future__ import annotations

import collections
import os
import random
import selectors
import threading
import time
import tty
from dataclasses import dataclass, field

from otalink.host.sim.line.faults import FaultConfig, FaultInjector

_READ_CHUNK = 4096
_MAX_PENDING = 1 << 16  # receiver overrun beyond this (bytes nobody reads)


@dataclass
class _Direction:
    """One direction of the line: source master fd -> wire -> destination master fd."""

    name: str
    src: int
    dst: int
    injector: FaultInjector
    offered: int = 0
    delivered: int = 0
    overrun: int = 0
    line_free: float = 0.0  # monotonic time the wire finishes its last queued byte
    # (t_first_byte_done, data, next_index): arrival of byte i is t + i * byte_time (+ latency)
    flight: collections.deque[list[object]] = field(default_factory=collections.deque)
    pending: bytearray = field(default_factory=bytearray)  # arrived, not yet written to dst


class LineSim:
    """Two pty pairs relayed by one thread, paced at ``baud`` with optional faults."""

    def __init__(
        self,
        baud: int | None = 115200,
        latency_s: float = 0.0,
        faults: FaultConfig | None = None,
        seed: int = 1,
        tx_buffer: int = 4096,
    ) -> None:
        if baud is not None and baud <= 0:
            raise ValueError("baud must be positive or None")
        if latency_s < 0:
            raise ValueError("latency_s must be >= 0")
        self.baud = baud
        self.latency_s = latency_s
        self.seed = seed
        self.tx_buffer = tx_buffer
        self._byte_time = 10.0 / baud if baud else 0.0
        self._rng = random.Random(seed)
        self._faults = faults or FaultConfig()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected = True
        self._stall_until = 0.0
        self._stall_drop = False
        self._next_random_stall = 0.0
        self.stalls = 0
        self.disconnects = 0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._host_master, self._host_slave = os.openpty()
        self._dev_master, self._dev_slave = os.openpty()
        for fd in (self._host_slave, self._dev_slave):
            tty.setraw(fd)  # no echo, no line discipline before anyone opens the path
        for fd in (self._host_master, self._dev_master):
            os.set_blocking(fd, False)
        self.host_path = os.ttyname(self._host_slave)
        self.device_path = os.ttyname(self._dev_slave)
        self._h2d = _Direction("h2d", self._host_master, self._dev_master, self._injector("h2d"))
        self._d2h = _Direction("d2h", self._dev_master, self._host_master, self._injector("d2h"))
        self._schedule_random_stall(time.monotonic())

    # ---- lifecycle ---------------------------------------------------------
    def start(self) -> LineSim:
        """Start relaying (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="linesim", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop relaying and close every descriptor."""
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for fd in (
            self._host_master,
            self._host_slave,
            self._dev_master,
            self._dev_slave,
            self._wake_r,
            self._wake_w,
        ):
            try:
                os.close(fd)
            except OSError:
                pass
        self._host_master = self._dev_master = -1

    def __enter__(self) -> LineSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- counters ----------------------------------------------------------
    @property
    def bytes_h2d(self) -> int:
        """Bytes the host side put on the line."""
        return self._h2d.offered

    @property
    def bytes_d2h(self) -> int:
        """Bytes the device side put on the line."""
        return self._d2h.offered

    @property
    def delivered_h2d(self) -> int:
        return self._h2d.delivered

    @property
    def delivered_d2h(self) -> int:
        return self._d2h.delivered

    def counters(self) -> dict[str, int | float]:
        """Every counter, for benches and the CLI."""
        with self._lock:
            return {
                "bytes_h2d": self._h2d.offered,
                "bytes_d2h": self._d2h.offered,
                "delivered_h2d": self._h2d.delivered,
                "delivered_d2h": self._d2h.delivered,
                "bits_flipped": self._h2d.injector.bits_flipped + self._d2h.injector.bits_flipped,
                "bytes_dropped": self._h2d.injector.bytes_dropped
                + self._d2h.injector.bytes_dropped,
                "bytes_duplicated": self._h2d.injector.bytes_duplicated
                + self._d2h.injector.bytes_duplicated,
                "overrun": self._h2d.overrun + self._d2h.overrun,
                "stalls": self.stalls,
                "disconnects": self.disconnects,
            }

    # ---- fault controls ------------------------------------------------------
    @property
    def faults(self) -> FaultConfig:
        return self._faults

    @faults.setter
    def faults(self, config: FaultConfig) -> None:
        """Replace the fault configuration (takes effect for the next bytes)."""
        with self._lock:
            self._faults = config
            self._h2d.injector = self._injector("h2d")
            self._d2h.injector = self._injector("d2h")
            self._schedule_random_stall(time.monotonic())
        self._wake()

    def disconnect(self) -> None:
        """Cut the line: everything in flight and sent meanwhile is lost."""
        with self._lock:
            if self._connected:
                self.disconnects += 1
            self._connected = False
            for d in (self._h2d, self._d2h):
                d.flight.clear()
                d.line_free = 0.0
        self._wake()

    def reconnect(self) -> None:
        """Restore the line."""
        with self._lock:
            self._connected = True
        self._wake()

    @property
    def connected(self) -> bool:
        return self._connected

    def stall(self, seconds: float, drop: bool = False) -> None:
        """Hold the line for ``seconds``: bytes wait (or are lost with ``drop``), then flow on."""
        with self._lock:
            self.stalls += 1
            self._stall_until = max(self._stall_until, time.monotonic() + seconds)
            self._stall_drop = drop
        self._wake()

    def flush_device_input(self) -> None:
        """Discard bytes queued toward the device, as a reset MCU loses its receive buffer."""
        with self._lock:
            self._h2d.flight.clear()
            self._h2d.pending.clear()
            self._h2d.line_free = 0.0
        try:
            while os.read(self._dev_slave, 65536):
                pass
        except (BlockingIOError, OSError):
            pass

    # ---- internals -------------------------------------------------------------
    def _injector(self, direction: str) -> FaultInjector:
        cfg = self._faults if self._faults.applies_to(direction) else FaultConfig()
        return FaultInjector(cfg, random.Random(self._rng.getrandbits(64)))

    def _schedule_random_stall(self, now: float) -> None:
        interval = self._faults.stall_interval_s
        self._next_random_stall = (
            now + self._rng.expovariate(1.0 / interval) if interval else float("inf")
        )

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except OSError:
            pass

    def _can_read(self, d: _Direction, now: float) -> bool:
        """Back-pressure: read from a side only while its driver FIFO has room."""
        if len(d.pending) >= _MAX_PENDING:
            return False
        if not self._byte_time:
            return len(d.pending) < _MAX_PENDING
        return d.line_free - now < self.tx_buffer * self._byte_time

    def _take(self, d: _Direction, now: float) -> None:
        """Read what the side wrote and put it on the wire (or lose it)."""
        limit = _READ_CHUNK
        if self._byte_time:
            room = self.tx_buffer - int(max(0.0, d.line_free - now) / self._byte_time)
            limit = max(1, min(limit, room))
        try:
            data = os.read(d.src, limit)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return  # EIO: nobody holds the slave open (cannot happen while we hold one)
        if not data:
            return
        d.offered += len(data)
        stalled = now < self._stall_until
        if not self._connected or (stalled and self._stall_drop):
            return
        data = d.injector.apply(data)
        if not data:
            return
        start = max(now, d.line_free, self._stall_until)
        d.line_free = start + len(data) * self._byte_time
        d.flight.append([start + self._byte_time + self.latency_s, data, 0])

    def _arrive(self, d: _Direction, now: float) -> float:
        """Move bytes whose arrival time has come to ``pending``; return the next arrival time."""
        if now < self._stall_until and d.flight:
            return self._stall_until  # a held line delivers nothing until the stall ends
        while d.flight:
            entry = d.flight[0]
            t0, data, idx = entry[0], entry[1], entry[2]
            assert isinstance(t0, float) and isinstance(data, bytes) and isinstance(idx, int)
            if self._byte_time:
                ready = len(data) if now >= t0 + (len(data) - 1) * self._byte_time else 0
                if not ready and now >= t0:
                    ready = min(len(data), int((now - t0) / self._byte_time) + 1)
            else:
                ready = len(data) if now >= t0 else 0
            if ready > idx:
                d.pending += data[idx:ready]
                entry[2] = ready
            if ready < len(data):
                return t0 + ready * self._byte_time
            d.flight.popleft()
        return float("inf")

    def _flush(self, d: _Direction) -> None:
        if not d.pending:
            return
        try:
            n = os.write(d.dst, d.pending)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:
            n = 0
        if n:
            d.delivered += n
            del d.pending[:n]
        if len(d.pending) > _MAX_PENDING:
            excess = len(d.pending) - _MAX_PENDING
            d.overrun += excess
            del d.pending[:excess]

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._wake_r, selectors.EVENT_READ, None)
        registered: dict[int, int] = {}
        dirs = (self._h2d, self._d2h)
        while not self._stop.is_set():
            now = time.monotonic()
            with self._lock:
                if now >= self._next_random_stall:
                    self.stalls += 1
                    self._stall_until = now + self._faults.stall_s
                    self._schedule_random_stall(self._stall_until)
                next_t = float("inf")
                for d in dirs:
                    next_t = min(next_t, self._arrive(d, now))
                    self._flush(d)
                    # A pty master reports writable almost always; retry pending on a short tick.
                    if d.pending:
                        next_t = min(next_t, now + 0.002)
                if self._byte_time:
                    for d in dirs:
                        if d.flight or d.line_free > now:
                            # Wake when the FIFO regains room for a useful chunk.
                            refill = d.line_free - self.tx_buffer / 2 * self._byte_time
                            next_t = min(next_t, max(now, refill))
                next_t = min(next_t, self._next_random_stall)
                wanted = {}
                for d in dirs:
                    wanted[d.src] = selectors.EVENT_READ if self._can_read(d, now) else 0
            # Keep the selector registrations in step with back-pressure.
            by_fd: dict[int, int] = {}
            for fd, ev in wanted.items():
                by_fd[fd] = by_fd.get(fd, 0) | ev
            for fd, ev in by_fd.items():
                old = registered.get(fd, 0)
                if ev == old:
                    continue
                if old and ev:
                    sel.modify(fd, ev)
                elif old:
                    sel.unregister(fd)
                else:
                    sel.register(fd, ev)
                registered[fd] = ev
            timeout = None if next_t == float("inf") else max(0.0, next_t - time.monotonic())
            events = sel.select(timeout)
            now = time.monotonic()
            with self._lock:
                for key, _ in events:
                    if key.fd == self._wake_r:
                        try:
                            os.read(self._wake_r, 4096)
                        except BlockingIOError:
                            pass
                        continue
                    for d in dirs:
                        if key.fd == d.src:
                            self._take(d, now)
        sel.close()
