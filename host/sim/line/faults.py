"""Seedable link faults applied to the bytes a line direction carries.

Public interface (stable):
    FaultConfig(ber=0.0, drop_rate=0.0, drop_burst=1, dup_rate=0.0,
                stall_interval_s=None, stall_s=0.0, directions="both")
    FaultInjector(config, rng).apply(data: bytes) -> bytes

``ber`` flips each bit independently with that probability; ``drop_rate`` is the fraction of bytes
lost, in bursts of mean length ``drop_burst``; ``dup_rate`` duplicates single bytes;
``stall_interval_s``/``stall_s`` stall the whole line for ``stall_s`` on average every
``stall_interval_s`` seconds (exponential gaps). ``directions`` is "both", "h2d" or "d2h".
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

Direction = Literal["both", "h2d", "d2h"]


@dataclass(frozen=True)
class FaultConfig:
    """What goes wrong on the line (all off by default)."""

    ber: float = 0.0
    drop_rate: float = 0.0
    drop_burst: int = 1
    dup_rate: float = 0.0
    stall_interval_s: float | None = None
    stall_s: float = 0.0
    directions: Direction = "both"

    def __post_init__(self) -> None:
        for name in ("ber", "drop_rate", "dup_rate"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if self.drop_burst < 1:
            raise ValueError("drop_burst must be >= 1")
        if self.stall_interval_s is not None and self.stall_interval_s <= 0:
            raise ValueError("stall_interval_s must be > 0")

    def applies_to(self, direction: str) -> bool:
        """Whether byte faults hit ``direction`` ("h2d" or "d2h")."""
        return self.directions in ("both", direction)

    @property
    def active(self) -> bool:
        """True when any byte-level fault is configured."""
        return self.ber > 0 or self.drop_rate > 0 or self.dup_rate > 0


def _gap(rng: random.Random, p: float) -> int:
    """Number of clean units before the next event of probability ``p`` (geometric, >= 0)."""
    if p <= 0.0:
        return 1 << 62
    u = rng.random()
    return int(math.log1p(-u) / math.log1p(-p)) if u > 0.0 else 0


class FaultInjector:
    """Applies one direction's byte faults; event gaps are drawn geometrically (no per-bit loop)."""

    def __init__(self, config: FaultConfig, rng: random.Random) -> None:
        self.config = config
        self.rng = rng
        self.bits_flipped = 0
        self.bytes_dropped = 0
        self.bytes_duplicated = 0
        # Bytes/bits left before the next event, carried across chunks so rates are exact.
        self._to_flip = _gap(rng, config.ber)
        self._burst_start_p = config.drop_rate / config.drop_burst
        self._to_drop = _gap(rng, self._burst_start_p)
        self._drop_left = 0
        self._to_dup = _gap(rng, config.dup_rate)

    def apply(self, data: bytes) -> bytes:
        """The bytes that leave the line for ``data`` offered to it."""
        cfg = self.config
        if not cfg.active or not data:
            return data
        buf = bytearray(data)
        if cfg.ber > 0:
            nbits = len(buf) * 8
            pos = self._to_flip
            while pos < nbits:
                buf[pos >> 3] ^= 1 << (pos & 7)
                self.bits_flipped += 1
                pos += 1 + _gap(self.rng, cfg.ber)
            self._to_flip = pos - nbits
        if cfg.drop_rate > 0:
            buf = self._drop(buf)
        if cfg.dup_rate > 0 and buf:
            buf = self._dup(buf)
        return bytes(buf)

    def _drop(self, buf: bytearray) -> bytearray:
        out = bytearray()
        i = 0
        n = len(buf)
        while i < n:
            if self._drop_left > 0:
                k = min(self._drop_left, n - i)
                self._drop_left -= k
                self.bytes_dropped += k
                i += k
                continue
            clean = min(self._to_drop, n - i)
            out += buf[i : i + clean]
            i += clean
            self._to_drop -= clean
            if i < n and self._to_drop == 0:
                # Burst lengths uniform in 1 .. 2*mean-1: mean drop_burst, drop fraction drop_rate.
                self._drop_left = self.rng.randint(1, 2 * self.config.drop_burst - 1)
                self._to_drop = _gap(self.rng, self._burst_start_p)
        return out

    def _dup(self, buf: bytearray) -> bytearray:
        out = bytearray()
        i = 0
        n = len(buf)
        while i < n:
            clean = min(self._to_dup, n - i)
            out += buf[i : i + clean]
            i += clean
            self._to_dup -= clean
            if i < n and self._to_dup == 0:
                out.append(buf[i])
                out.append(buf[i])
                self.bytes_duplicated += 1
                i += 1
                self._to_dup = _gap(self.rng, self.config.dup_rate)
        return out
