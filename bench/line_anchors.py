"""What the anchors put on the wire, computed with their own PyPI packages' framing code.

smp_console_seconds: smpclient's ImageUploadWrite requests (CBOR + SMP header) in the smp
package's console framing (base64 lines, CRC16), stop-and-wait, chunk sized to the default
SMPSerialTransport's max_unencoded_size. esptool_seconds: esptool's stub loader commands
(FLASH_BEGIN / FLASH_DEFL_BEGIN, FLASH_DATA / FLASH_DEFL_DATA blocks of FLASH_WRITE_SIZE,
SPI_FLASH_MD5), SLIP-framed by ESPLoader.write, one response per command (stop-and-wait).
Time = (request bytes + response bytes) x 10 / baud + 2 x one-way latency per round trip; device
processing time is taken as zero (favours the anchors).
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from typing import Any

import smp.packet as smppacket
from esptool.targets.esp32 import ESP32StubLoader
from smp.image_management import ImageUploadWriteResponse
from smpclient.requests.image_management import ImageUploadWrite
from smpclient.transport.serial import SMPSerialTransport


def _smp_wire(message: bytes) -> int:
    return sum(len(p) for p in smppacket.encode(message, line_length=128))


def smp_console(image: bytes, baud: int, latency_s: float) -> dict[str, Any]:
    """Bytes and time of an SMP image upload over the serial console transport."""
    budget = SMPSerialTransport().max_unencoded_size
    sha = hashlib.sha256(image).digest()
    off = 0
    tx = rx = trips = 0
    while off < len(image):
        first = off == 0

        def req(n: int, off: int = off, first: bool = first) -> bytes:
            kw: dict[str, Any] = {"off": off, "data": image[off : off + n]}
            if first:
                kw.update(image=0, len=len(image), sha=sha)
            return bytes(ImageUploadWrite(**kw))

        n = min(len(image) - off, budget)
        while n > 1 and len(req(n)) > budget:
            n -= max(1, (len(req(n)) - budget))
        tx += _smp_wire(req(n))
        off += n
        rx += _smp_wire(bytes(ImageUploadWriteResponse(off=off)))
        trips += 1
    seconds = (tx + rx) * 10.0 / baud + trips * 2 * latency_s
    return {"tx_bytes": tx, "rx_bytes": rx, "round_trips": trips, "seconds": seconds,
            "chunk_budget": budget}  # fmt: skip


class _Port:
    def __init__(self) -> None:
        self.timeout = 3.0
        self.written = 0
        self.ops: list[int] = []

    def write(self, buf: bytes) -> None:
        self.written += len(buf)
        self.ops.append(buf[2])  # 0xC0, direction 0x00, op (never an escaped value)


def _loader(port: _Port) -> Any:
    ld = object.__new__(ESP32StubLoader)
    ld._port = port
    ld._trace_enabled = False
    resp_port = _Port()
    ld._resp_bytes = 0

    def read() -> bytes:
        # The stub's answer: <BBHI resp=1, op, len=2, value=0> + 2 status bytes, SLIP-framed.
        op = port.ops[-1]
        pkt = struct.pack("<BBHI", 1, op, 2, 0) + b"\0\0"
        if op == ESP32StubLoader.ESP_CMDS["SPI_FLASH_MD5"]:
            pkt = struct.pack("<BBHI", 1, op, 18, 0) + bytes(16) + b"\0\0"
        before = resp_port.written
        ESP32StubLoader.write(type("R", (), {"_port": resp_port, "trace": lambda *a: None})(), pkt)
        ld._resp_bytes += resp_port.written - before
        return pkt

    ld.read = read
    return ld


def esptool(image: bytes, baud: int, latency_s: float, compress: bool) -> dict[str, Any]:
    """Bytes and time of ``esptool write_flash`` (stub loader) of ``image``."""
    port = _Port()
    ld = _loader(port)
    block = ESP32StubLoader.FLASH_WRITE_SIZE
    if compress:
        data = zlib.compress(image, 9)
        ld.flash_defl_begin(len(image), len(data), 0x10000)
        for seq, i in enumerate(range(0, len(data), block)):
            ld.flash_defl_block(data[i : i + block], seq)
    else:
        data = image
        ld.flash_begin(len(image), 0x10000)
        for seq, i in enumerate(range(0, len(data), block)):
            chunk = data[i : i + block]
            ld.flash_block(chunk + b"\xff" * (block - len(chunk)), seq)
    ld.flash_md5sum(0x10000, len(image))
    trips = len(port.ops)
    tx, rx = port.written, ld._resp_bytes
    seconds = (tx + rx) * 10.0 / baud + trips * 2 * latency_s
    return {"tx_bytes": tx, "rx_bytes": rx, "round_trips": trips, "seconds": seconds,
            "wire_image_bytes": len(data)}  # fmt: skip
