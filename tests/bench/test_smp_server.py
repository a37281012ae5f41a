"""The SMP server double (bench/smp_server.py) behaves like Zephyr's MCUmgr towards the real
smpclient: framing, buffer limits, img_mgmt upload rules, over a LineSim."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import struct
import subprocess
import sys
from pathlib import Path

import cbor2
import pytest
import smp.packet as smppacket
from otalink.host.sim.line import LineSim
from smpclient import SMPClient
from smpclient.transport.serial import BufferSize, SMPSerialTransport

from bench import smp_server as S
from bench.smp_peer import ROOT, smp_upload


def _req(op: int, group: int, cmd: int, body: dict[str, object], seq: int = 7) -> bytes:
    payload = cbor2.dumps(body)
    return S.HEADER.pack((1 << 3) | op, 0, len(payload), group, seq, cmd) + payload


def _server(tmp: Path, buf: int = 384, transport: str = "console") -> S.SmpServer:
    return S.SmpServer(-1, transport, buf, 4, 128, str(tmp / "slot.bin"), 1 << 20)


def test_crc_is_zephyrs_crc16_itu_t() -> None:
    assert S.crc16_xmodem(b"123456789") == 0x31C3  # CRC-16/XMODEM check value


def test_console_framing_reads_smp_packages_encoding(tmp_path: Path) -> None:
    srv = _server(tmp_path, buf=1024)
    msg = random.Random(1).randbytes(700)
    wire = b"".join(smppacket.encode(msg, line_length=128))
    got = srv.rx.feed(wire[:100]) + srv.rx.feed(wire[100:])
    assert got == [msg]
    # and what we send, the smp package decodes
    dec = smppacket.decode()
    next(dec)
    lines = S.console_encode(msg).split(b"\n")[:-1]
    assert all(len(ln) + 1 <= 128 for ln in lines)
    with pytest.raises(StopIteration) as done:
        for ln in lines:
            dec.send(ln + b"\n")
    assert done.value.value == msg


def test_console_drops_what_zephyr_drops(tmp_path: Path) -> None:
    srv = _server(tmp_path, buf=384)
    big = random.Random(2).randbytes(381)  # 2 + 381 + 2 > 384: no room in the packet buffer
    assert srv.rx.feed(b"".join(smppacket.encode(big, line_length=128))) == []
    assert srv.c.dropped_packets == 1
    ok = random.Random(2).randbytes(380)  # 2 + 380 + 2 = 384: fits
    assert srv.rx.feed(b"".join(smppacket.encode(ok, line_length=128))) == [ok]
    long_line = b"".join(smppacket.encode(b"x" * 200, line_length=200))
    assert srv.rx.feed(long_line) == [] and srv.c.dropped_lines >= 1  # > 128-byte line buffer
    frame = b"\x00\x04ab" + b"\x00\x00"  # length 2 + CRC, the CRC wrong
    bad = S.START + base64.b64encode(frame) + b"\n"
    assert srv.rx.feed(bad) == [] and srv.c.dropped_packets == 2


def test_raw_transport_sizes_by_header_and_drops_oversize(tmp_path: Path) -> None:
    srv = _server(tmp_path, buf=384, transport="raw")
    pkt = _req(S.OP_READ, S.GROUP_OS, S.OS_PARAMS, {})
    assert srv.rx.feed(pkt[:5]) == [] and srv.rx.feed(pkt[5:] + pkt) == [pkt, pkt]
    huge = S.HEADER.pack(2, 0, 400, 1, 0, 1) + bytes(400)
    assert srv.rx.feed(huge) == [] and srv.c.dropped_packets == 1


def _answer(srv: S.SmpServer, pkt: bytes) -> dict[str, object]:
    out = srv.handle(pkt)
    assert out is not None
    hdr = S.HEADER.unpack_from(out)
    assert hdr[4] == 7 and hdr[0] & 7 in (S.OP_READ_RSP, S.OP_WRITE_RSP)  # echoes the sequence
    return cbor2.loads(out[S.HEADER.size :])  # type: ignore[no-any-return]


def test_img_mgmt_upload_rules(tmp_path: Path) -> None:
    srv = _server(tmp_path, buf=1024)
    assert _answer(srv, _req(0, 0, 6, {})) == {"buf_size": 1024, "buf_count": 4}
    image = S.mcuboot_image(random.Random(3).randbytes(3000))
    sha = hashlib.sha256(image).digest()
    up = lambda **kw: _answer(srv, _req(S.OP_WRITE, S.GROUP_IMAGE, S.IMG_UPLOAD, kw))  # noqa: E731
    # the first chunk must carry an MCUboot header
    assert up(off=0, len=len(image), data=bytes(64), sha=sha) == {
        "err": {"group": 1, "rc": S.IMG_ERR_INVALID_IMAGE_HEADER_MAGIC}
    }
    assert up(off=0, len=len(image), data=image[:500], sha=sha) == {"off": 500}
    assert up(off=900, data=image[900:1000]) == {"off": 500}  # not written: where to go on
    assert up(off=500, data=image[500:] + b"x")["err"] == {  # type: ignore[index]
        "group": 1,
        "rc": S.IMG_ERR_INVALID_IMAGE_DATA_OVERRUN,
    }
    assert up(off=500, data=image[500:]) == {"off": len(image), "match": True}
    assert (tmp_path / "slot.bin").read_bytes()[: len(image)] == image
    # a wrong sha: uploaded, but no match
    assert up(off=0, len=len(image), data=image, sha=bytes(32)) == {
        "off": len(image),
        "match": False,
    }
    assert _answer(srv, _req(0, 9, 9, {})) == {"rc": S.MGMT_ERR_ENOTSUP}


def test_mcuboot_image_layout() -> None:
    body = b"hello"
    img = S.mcuboot_image(body)
    magic, _load, hdr_size, _p, size = struct.unpack_from("<IIHHI", img)
    assert (magic, hdr_size, size) == (S.IMAGE_MAGIC, 32, 5) and img[32:37] == body
    assert img[37:39] == b"\x07\x69"  # TLV info magic 0x6907 after the body


@pytest.mark.parametrize(("transport", "buf"), [("console", 384), ("raw", 1024)])
def test_real_smpclient_uploads_through_the_line(tmp_path: Path, transport: str, buf: int) -> None:
    body = random.Random(4).randbytes(6000)
    r = smp_upload(body, 921600, 0.0, tmp_path, transport, buf)
    assert r["server"]["match"] is True and r["server"]["dropped_packets"] == 0
    assert r["max_unencoded_size"] == (buf - 4 if transport == "console" else buf)
    # stop-and-wait requests of at most the buffer: at least body/buffer of them
    assert r["requests"] >= len(body) // buf
    assert 0 < r["ratio"] < 1


def test_a_client_ignoring_the_buffer_size_gets_no_answer(tmp_path: Path) -> None:
    """Honouring CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE: requests sized for 2048 bytes never reach
    a 384-byte device (dropped, as Zephyr drops them), so the upload times out."""
    with LineSim(baud=None) as sim:
        srv = subprocess.Popen(
            [sys.executable, "-m", "bench.smp_server", sim.device_path, "--slot",
             str(tmp_path / "s.bin"), "--buf-size", "384"],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert srv.stdout is not None and srv.stdout.readline().strip() == "ready"

            async def go() -> None:
                tr = SMPSerialTransport(BufferSize(2048))
                client = SMPClient(tr, sim.host_path, timeout_s=1.0)
                await client.connect(2.0)
                try:
                    async for _ in client.upload(S.mcuboot_image(bytes(5000)), first_timeout_s=1):
                        pass
                finally:
                    await client.disconnect()

            with pytest.raises(TimeoutError):
                asyncio.run(go())
        finally:
            srv.terminate()
            out, _ = srv.communicate(timeout=10)
    assert '"dropped_packets": 1' in out
