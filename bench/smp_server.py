"""An SMP image-upload server that behaves like Zephyr's MCUmgr: the test double of a device.

    python -m bench.smp_server PTY --slot FILE [--transport console|raw] [--buf-size 384]
        [--buf-count 4] [--line-size 128] [--slot-size BYTES]

It plays the device side of a serial line for the real ``smpclient`` (PyPI), as the ECU runner
plays ours: a separate process on the device pty of a ``LineSim``, printing ``ready`` when it
listens and one JSON line of counters when it ends (SIGTERM or SIGINT).

What it follows of Zephyr (subsys/mgmt/mcumgr, drivers/console/uart_mcumgr.c):

* console transport (``CONFIG_MCUMGR_TRANSPORT_UART``, "SMP over console"): lines start with
  0x06 0x09 (first frame) or 0x04 0x14 (continuation) and end with a newline; a line longer than
  the UART line buffer (``CONFIG_UART_MCUMGR_RX_BUF_SIZE``, 128, newline included) is dropped.
  The base64 payloads decode into one packet buffer of ``CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE``
  (``--buf-size``) bytes: [length u16 BE = body + 2][body][CRC16 BE]; a packet that does not fit
  is dropped, as is one whose CRC-16/XMODEM (crc16_itu_t, seed 0) over body + CRC is not 0.
  Replies go out the same way, base64 lines of at most 128 bytes.
* raw transport (``CONFIG_MCUMGR_TRANSPORT_RAW_UART``): [8-byte SMP header][payload], no
  framing; a header announcing more than the packet buffer drops the packet.
* os_mgmt MCUmgr parameters (group 0, command 6, read) -> {buf_size, buf_count}: what
  smpclient reads on connect to size its requests.
* img_mgmt upload (group 1, command 1, write), as img_mgmt_upload / img_mgmt_upload_inspect:
  ``off`` is required; the first chunk (off 0) needs ``len``, at least a 32-byte MCUboot image
  header with its magic, an image no larger than the slot, and erases ``len`` bytes of the slot
  at once (no CONFIG_IMG_ERASE_PROGRESSIVELY); a chunk at another offset than expected is not
  written and answered with the expected offset; data past ``len`` is refused (data overrun);
  each answer carries ``off``; the last one, with CONFIG_IMG_ENABLE_IMAGE_CHECK, ``match``: the
  SHA-256 of the slot contents against the ``sha`` of the first chunk. Errors are SMP v2
  ``{"err": {"group": 1, "rc": N}}`` (v1 requests: ``{"rc": N}``).

The slot is a file (erased = 0xFF, writes overwrite): device flash time is not modelled, as for
our agent's emulated NOR flash. Only the replies the host waits for are paced: by the LineSim.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import select
import signal
import struct
import sys
import tty
from dataclasses import asdict, dataclass
from typing import Any

import cbor2

START = b"\x06\x09"
CONT = b"\x04\x14"
HEADER = struct.Struct("!BBHHBB")  # res/ver/op, flags, length, group, sequence, command id
OP_READ, OP_READ_RSP, OP_WRITE, OP_WRITE_RSP = 0, 1, 2, 3
GROUP_OS, GROUP_IMAGE = 0, 1
OS_PARAMS = 6
IMG_UPLOAD = 1
MGMT_ERR_ENOTSUP = 8
MGMT_ERR_EINVAL = 3
# img_mgmt group error codes (zephyr/mgmt/mcumgr/grp/img_mgmt/img_mgmt.h)
IMG_ERR_INVALID_OFFSET = 10
IMG_ERR_INVALID_IMAGE_HEADER = 11
IMG_ERR_INVALID_HASH = 13
IMG_ERR_INVALID_IMAGE_HEADER_MAGIC = 24
IMG_ERR_INVALID_IMAGE_TOO_LARGE = 26
IMG_ERR_INVALID_IMAGE_DATA_OVERRUN = 27
IMAGE_MAGIC = 0x96F3B83D  # MCUboot image header magic (little-endian in the image)
IMAGE_HEADER_SIZE = 32
LINE_B64 = 124  # base64 characters per reply line: 2 + 124 + newline = 127 <= 128


def crc16_xmodem(data: bytes, crc: int = 0) -> int:
    """CRC-16/XMODEM (poly 0x1021, seed 0, no reflection): Zephyr's crc16_itu_t."""
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def console_encode(body: bytes) -> bytes:
    """One SMP packet as console lines (Zephyr mcumgr_serial_tx_pkt)."""
    frame = struct.pack("!H", len(body) + 2) + body + struct.pack("!H", crc16_xmodem(body))
    b64 = base64.b64encode(frame)
    out = bytearray()
    for i in range(0, len(b64), LINE_B64):
        out += (START if i == 0 else CONT) + b64[i : i + LINE_B64] + b"\n"
    return bytes(out)


def mcuboot_image(body: bytes, version: tuple[int, int, int, int] = (2, 0, 0, 0)) -> bytes:
    """``body`` as an MCUboot image: 32-byte header, the body, a TLV area with its SHA-256."""
    hdr = struct.pack("<IIHHIIBBHII", IMAGE_MAGIC, 0, IMAGE_HEADER_SIZE, 0, len(body), 0,
                      *version, 0)  # fmt: skip
    digest = hashlib.sha256(hdr + body).digest()
    tlv = struct.pack("<HH", 0x10, 32) + digest  # IMAGE_TLV_SHA256
    return hdr + body + struct.pack("<HH", 0x6907, 4 + len(tlv)) + tlv


@dataclass
class Counters:
    requests: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    dropped_lines: int = 0  # longer than the line buffer, or no start/continuation marker
    dropped_packets: int = 0  # too large for the packet buffer, bad base64, bad CRC, bad length
    uploads_done: int = 0
    match: bool | None = None


class ConsoleRx:
    """The console transport's receive side: lines -> complete SMP packets."""

    def __init__(self, buf_size: int, line_size: int, counters: Counters) -> None:
        self.buf_size = buf_size
        self.line_size = line_size
        self.c = counters
        self.line = bytearray()
        self.ignoring = False
        self.pkt: bytearray | None = None
        self.pkt_len = 0
        self.used = 0  # bytes decoded into the packet buffer, the length field included

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        start = 0
        while start < len(data):
            nl = data.find(b"\n", start)
            chunk = data[start:] if nl < 0 else data[start : nl + 1]
            start += len(chunk)
            if not self.ignoring:
                if len(self.line) + len(chunk) > self.line_size:
                    self.ignoring = True  # line too long for the UART line buffer: dropped
                    self.line.clear()
                    self.c.dropped_lines += 1
                else:
                    self.line += chunk
            if nl >= 0:
                if not self.ignoring:
                    msg = self._line(bytes(self.line[:-1]))
                    if msg is not None:
                        out.append(msg)
                self.line.clear()
                self.ignoring = False
        return out

    def _drop(self) -> None:
        self.pkt = None
        self.c.dropped_packets += 1

    def _line(self, line: bytes) -> bytes | None:
        marker = line[:2]
        if marker == START:
            self.pkt = bytearray()
            self.used = 0
        elif marker == CONT:
            if not self.pkt:
                self.pkt = None
                self.c.dropped_lines += 1
                return None
        else:
            self.c.dropped_lines += 1  # console text, not SMP
            return None
        try:
            dec = base64.b64decode(line[2:], validate=True)
        except ValueError:
            self._drop()
            return None
        assert self.pkt is not None
        first = marker == START
        # The length field is pulled from the front of the buffer: it still takes its room
        if self.used + len(dec) > self.buf_size:
            self._drop()  # no tailroom in the packet buffer
            return None
        self.used += len(dec)
        self.pkt += dec
        if first:
            if len(self.pkt) < 2:
                self._drop()
                return None
            self.pkt_len = struct.unpack_from("!H", self.pkt)[0]
            del self.pkt[:2]
        if len(self.pkt) < self.pkt_len:
            return None
        if len(self.pkt) > self.pkt_len or crc16_xmodem(bytes(self.pkt)) != 0:
            self._drop()
            return None
        body = bytes(self.pkt[:-2])
        self.pkt = None
        return body


class RawRx:
    """The raw UART transport: [header][payload] back to back, sized by the header."""

    def __init__(self, buf_size: int, counters: Counters) -> None:
        self.buf_size = buf_size
        self.c = counters
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        out = []
        while len(self.buf) >= HEADER.size:
            total = HEADER.size + struct.unpack_from("!H", self.buf, 2)[0]
            if total > self.buf_size or self.buf[0] & 0x07 > OP_WRITE_RSP:
                self.buf.clear()  # longer than the packet buffer (or no SMP op): dropped
                self.c.dropped_packets += 1
                break
            if len(self.buf) < total:
                break
            out.append(bytes(self.buf[:total]))
            del self.buf[:total]
        return out


class ImgMgmt:
    """img_mgmt upload state (g_img_mgmt_state) over a slot file."""

    def __init__(self, slot_path: str, slot_size: int, counters: Counters) -> None:
        self.path = slot_path
        self.slot_size = slot_size
        self.c = counters
        self.size = -1  # -1: no upload in progress
        self.off = 0
        self.sha = b""
        with open(self.path, "ab"):
            pass

    def _reset(self) -> None:
        self.size = -1
        self.off = 0
        self.sha = b""

    def upload(self, req: dict[str, Any]) -> tuple[dict[str, Any] | None, int]:
        """(reply map, 0) or (None, img_mgmt error code)."""
        off = req.get("off")
        data = req.get("data", b"")
        if not isinstance(off, int) or not isinstance(data, bytes):
            return None, IMG_ERR_INVALID_OFFSET
        if off == 0:
            size = req.get("len")
            if len(data) < IMAGE_HEADER_SIZE:
                return None, IMG_ERR_INVALID_IMAGE_HEADER
            if not isinstance(size, int):
                return None, IMG_ERR_INVALID_IMAGE_HEADER
            if struct.unpack_from("<I", data)[0] != IMAGE_MAGIC:
                return None, IMG_ERR_INVALID_IMAGE_HEADER_MAGIC
            sha = req.get("sha", b"")
            if not isinstance(sha, bytes) or len(sha) > 32:
                return None, IMG_ERR_INVALID_HASH
            if size > self.slot_size:
                return None, IMG_ERR_INVALID_IMAGE_TOO_LARGE
            if sha and self.size >= 0 and sha == self.sha:
                return {"off": self.off}, 0  # the interrupted upload of this image: resume
            self.size, self.off, self.sha = size, 0, sha
            with open(self.path, "r+b") as f:  # img_mgmt_erase_image_data(0, len)
                f.truncate(0)
                f.write(b"\xff" * size)
        else:
            if self.size < 0:
                return None, IMG_ERR_INVALID_OFFSET
            if off != self.off:
                return {"off": self.off}, 0  # not written; the client resends from here
            if off + len(data) > self.size:
                return None, IMG_ERR_INVALID_IMAGE_DATA_OVERRUN
        reply: dict[str, Any] = {}
        if data:
            with open(self.path, "r+b") as f:
                f.seek(off)
                f.write(data)
            self.off += len(data)
        reply["off"] = self.off
        if self.off == self.size:
            with open(self.path, "rb") as f:
                digest = hashlib.sha256(f.read(self.size)).digest()
            reply["match"] = digest == self.sha if len(self.sha) == 32 else False
            self.c.uploads_done += 1
            self.c.match = reply["match"]
            self._reset()
        return reply, 0


class SmpServer:
    """One device: transport receive side + SMP dispatch + the img_mgmt upload state."""

    def __init__(self, fd: int, transport: str, buf_size: int, buf_count: int, line_size: int,
                 slot_path: str, slot_size: int) -> None:  # fmt: skip
        self.fd = fd
        self.transport = transport
        self.buf_size = buf_size
        self.buf_count = buf_count
        self.c = Counters()
        self.rx: ConsoleRx | RawRx = (
            ConsoleRx(buf_size, line_size, self.c) if transport == "console"
            else RawRx(buf_size, self.c)
        )  # fmt: skip
        self.img = ImgMgmt(slot_path, slot_size, self.c)

    def handle(self, pkt: bytes) -> bytes | None:
        """The reply to one SMP packet (None: not answered)."""
        if len(pkt) < HEADER.size:
            return None
        b0, _flags, length, group, seq, cmd = HEADER.unpack_from(pkt)
        op, ver = b0 & 0x07, (b0 >> 3) & 0x03
        if length != len(pkt) - HEADER.size or op not in (OP_READ, OP_WRITE):
            return None
        self.c.requests += 1
        try:
            req = cbor2.loads(pkt[HEADER.size :]) if length else {}
        except (cbor2.CBORDecodeError, ValueError):
            req = None
        reply: dict[str, Any] | None
        if not isinstance(req, dict):
            reply, err, err_group = None, MGMT_ERR_EINVAL, 0
        elif group == GROUP_OS and cmd == OS_PARAMS and op == OP_READ:
            reply, err, err_group = {"buf_size": self.buf_size, "buf_count": self.buf_count}, 0, 0
        elif group == GROUP_IMAGE and cmd == IMG_UPLOAD and op == OP_WRITE:
            reply, err = self.img.upload(req)
            err_group = GROUP_IMAGE
        else:
            reply, err, err_group = None, MGMT_ERR_ENOTSUP, 0
        if reply is None:
            if ver >= 1 and err_group:
                reply = {"err": {"group": err_group, "rc": err}}
            else:
                reply = {"rc": err}
        body = cbor2.dumps(reply)
        hdr = HEADER.pack((ver << 3) | (op + 1), 0, len(body), group, seq, cmd)
        return hdr + body

    def serve(self) -> None:
        while True:
            r, _, _ = select.select([self.fd], [], [], 0.5)
            if not r:
                continue
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                return
            self.c.bytes_in += len(data)
            for pkt in self.rx.feed(data):
                out = self.handle(pkt)
                if out is None:
                    continue
                wire = console_encode(out) if self.transport == "console" else out
                self.c.bytes_out += len(wire)
                view = memoryview(wire)
                while view:
                    n = os.write(self.fd, view)
                    view = view[n:]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("port", help="device side pty (LineSim.device_path)")
    ap.add_argument("--slot", required=True, help="slot file (the image ends up here)")
    ap.add_argument("--transport", choices=("console", "raw"), default="console")
    ap.add_argument("--buf-size", type=int, default=384, help="CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE")
    ap.add_argument("--buf-count", type=int, default=4, help="CONFIG_MCUMGR_TRANSPORT_NETBUF_COUNT")
    ap.add_argument("--line-size", type=int, default=128, help="CONFIG_UART_MCUMGR_RX_BUF_SIZE")
    ap.add_argument("--slot-size", type=int, default=1 << 20)
    a = ap.parse_args(argv)
    fd = os.open(a.port, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    srv = SmpServer(fd, a.transport, a.buf_size, a.buf_count, a.line_size, a.slot, a.slot_size)

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    try:
        srv.serve()
    except KeyboardInterrupt:
        pass
    finally:
        os.close(fd)
        print(json.dumps(asdict(srv.c)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
