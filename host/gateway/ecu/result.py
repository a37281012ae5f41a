"""Figures of one image transfer.

Public interface (stable):
    TransferResult(image_bytes, wire_bytes, compression, tx_bytes, rx_bytes, seconds, baud,
                   resumed_from, retransmitted_bytes, reconnects, frames, sha256)
      .ratio -> float | None   goodput / line rate: image_bytes / seconds / (baud / 10)
      .to_dict() -> TransferFigures   JSON-able (what ``otalink flash --json`` prints)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict


class TransferFigures(TypedDict):
    """``TransferResult.to_dict()``: the figures as JSON (sha256 as hex, plus ``ratio``)."""

    image_bytes: int
    wire_bytes: int
    compression: int
    tx_bytes: int
    rx_bytes: int
    seconds: float
    baud: int | None
    resumed_from: int
    retransmitted_bytes: int
    reconnects: int
    frames: int
    sha256: str
    ratio: float | None


@dataclass(frozen=True)
class TransferResult:
    """What one ``EcuClient.install`` moved and how long it took (BEGIN to verified)."""

    image_bytes: int
    wire_bytes: int  # length of the stream sent (deflated or raw)
    compression: int  # codes.COMP_*
    tx_bytes: int  # bytes the host wrote, framing and retransmissions included
    rx_bytes: int  # bytes the host read
    seconds: float  # from BEGIN written to the verified RESULT read
    baud: int | None
    resumed_from: int  # wire offset the device granted at the first BEGIN
    retransmitted_bytes: int
    reconnects: int  # link recoveries (re-HELLO + BEGIN)
    frames: int  # DATA frames written
    sha256: bytes

    @property
    def ratio(self) -> float | None:
        """Image bytes per second over the line's byte rate (8N1: baud / 10)."""
        if not self.baud or self.seconds <= 0:
            return None
        return self.image_bytes / self.seconds / (self.baud / 10.0)

    def to_dict(self) -> TransferFigures:
        return {
            "image_bytes": self.image_bytes,
            "wire_bytes": self.wire_bytes,
            "compression": self.compression,
            "tx_bytes": self.tx_bytes,
            "rx_bytes": self.rx_bytes,
            "seconds": self.seconds,
            "baud": self.baud,
            "resumed_from": self.resumed_from,
            "retransmitted_bytes": self.retransmitted_bytes,
            "reconnects": self.reconnects,
            "frames": self.frames,
            "sha256": self.sha256.hex(),
            "ratio": self.ratio,
        }
