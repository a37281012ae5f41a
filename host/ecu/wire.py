"""Frames and messages on the host side: a thin typed layer over ``otalink.protocol``.

Public interface:
    encode(msg: list[Any]) -> bytes             one framed message (protocol cbor + frame)
    Deframer(max_payload).feed(data) -> list[list[Any]]   validated messages, in order
      .crc_errors / .frame_errors / .bad_messages counters
    decode_report(body: bytes) -> list[Any]     validated report body (INFO / STATUS)
"""

from __future__ import annotations

from typing import Any

from otalink.protocol import cbor, codes, messages
from otalink.protocol.errors import ProtocolError
from otalink.protocol.frame import FrameParser, frame


def encode(msg: list[Any]) -> bytes:
    """Frame one message (CBOR array in the protocol's profile) for the wire."""
    return frame(cbor.dumps(msg))


def decode_report(body: bytes) -> list[Any]:
    """A report body decoded and checked against the protocol's bounds (ProtocolError if not)."""
    return messages.decode_report(body)


class Deframer:
    """Resynchronising frame parser (protocol.frame) that yields validated messages."""

    def __init__(self, max_payload: int = codes.MAX_PAYLOAD_ABS) -> None:
        self.max_payload = max_payload
        self._parser = FrameParser(max_payload)
        self.bad_messages = 0

    @property
    def crc_errors(self) -> int:
        return int(self._parser.crc_errors)

    @property
    def frame_errors(self) -> int:
        return int(self._parser.frame_errors)

    def reset(self) -> None:
        self._parser = FrameParser(self.max_payload)

    def feed(self, data: bytes) -> list[list[Any]]:
        out: list[list[Any]] = []
        for payload in self._parser.feed_all(data):
            try:
                msg = messages.parse(payload, True)
            except ProtocolError:
                self.bad_messages += 1
                continue
            out.append(msg)
        return out
