"""Frames and messages on the host side: thin typed layer over ``otalink.protocol``.

Public interface:
    encode(msg: list[object]) -> bytes          one framed CBOR message
    Deframer(max_payload).feed(data) -> list[list[object]]   decoded messages, in order
      .crc_errors / .frame_errors / .bad_messages counters
"""

from __future__ import annotations

import binascii
import struct
from typing import Any

import cbor2
from otalink.protocol import codes

_HDR = struct.Struct("<BBHH")


def encode(msg: list[Any]) -> bytes:
    """Frame one message (CBOR array) for the wire."""
    payload = cbor2.dumps(msg)
    n = len(payload)
    head = _HDR.pack(codes.SOF0, codes.SOF1, n, n ^ 0xFFFF)
    crc = binascii.crc32(head[2:] + payload) & 0xFFFFFFFF
    return head + payload + struct.pack("<I", crc)


class Deframer:
    """Resynchronising frame parser (docs/protocol.md) that yields decoded messages."""

    def __init__(self, max_payload: int = codes.MAX_PAYLOAD_ABS) -> None:
        self.max_payload = max_payload
        self._buf = bytearray()
        self.crc_errors = 0
        self.frame_errors = 0
        self.bad_messages = 0

    def reset(self) -> None:
        self._buf.clear()

    def feed(self, data: bytes) -> list[list[Any]]:
        buf = self._buf
        buf += data
        out: list[list[Any]] = []
        while True:
            start = buf.find(codes.SOF0)
            if start < 0:
                if buf:
                    self.frame_errors += 1
                buf.clear()
                break
            if start:
                self.frame_errors += 1
                del buf[:start]
            if len(buf) < codes.HEADER_LEN:
                break
            _sof0, sof1, n, nn = _HDR.unpack_from(buf)
            if sof1 != codes.SOF1 or n ^ 0xFFFF != nn or n == 0 or n > self.max_payload:
                self.frame_errors += 1
                del buf[:1]
                continue
            total = codes.HEADER_LEN + n + codes.TRAILER_LEN
            if len(buf) < total:
                break
            crc = binascii.crc32(buf[2 : codes.HEADER_LEN + n]) & 0xFFFFFFFF
            (want,) = struct.unpack_from("<I", buf, codes.HEADER_LEN + n)
            if crc != want:
                self.crc_errors += 1
                del buf[:1]
                continue
            payload = bytes(buf[codes.HEADER_LEN : codes.HEADER_LEN + n])
            del buf[:total]
            try:
                msg = cbor2.loads(payload)
            except Exception:
                self.bad_messages += 1
                continue
            if isinstance(msg, list) and msg and isinstance(msg[0], int):
                out.append(msg)
            else:
                self.bad_messages += 1
        return out
