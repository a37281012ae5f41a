"""SMP image upload measured for real: smpclient (PyPI) against ``bench.smp_server`` on a LineSim.

    smp_upload(body, baud, latency_s, workdir, transport="console", buf_size=384) -> dict

The uploaded file is ``body`` (the same bench bundle our agent gets) as an MCUboot image (32-byte
header + body + SHA-256 TLV), since Zephyr's img_mgmt refuses a first chunk without the MCUboot
magic. The client is the real ``smpclient.SMPClient`` with its serial transports:
``SMPSerialTransport`` (console framing; ``Auto`` sizing: it reads the server's buffer size on
connect and fills it) or ``SMPSerialRawTransport`` (raw UART). ``seconds`` runs from the first
upload request written to the last answer read (``SMPClient.upload``: stop-and-wait, one request
in flight, as smpclient does); the MCUmgr parameters read on connect is ``connect_seconds``.
``ratio`` = body bytes / seconds / line rate, so the MCUboot header and TLV count as SMP's
overhead, as our framing counts as ours.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from otalink.host.sim.line import LineSim
from smpclient import SMPClient
from smpclient.transport.serial import SMPSerialRawTransport, SMPSerialTransport

from bench.smp_server import mcuboot_image

ROOT = Path(__file__).resolve().parent.parent


async def _client_upload(
    url: str, image: bytes, transport: str, buf_size: int, baud: int
) -> dict[str, Any]:
    tr: SMPSerialTransport | SMPSerialRawTransport
    if transport == "console":
        tr = SMPSerialTransport(baudrate=baud)
    else:
        tr = SMPSerialRawTransport(mtu=buf_size, baudrate=baud)
    client = SMPClient(tr, url, timeout_s=10.0)
    t0 = time.monotonic()
    await client.connect(5.0)
    t1 = time.monotonic()
    requests = 0
    async for _off in client.upload(image, first_timeout_s=20.0, subsequent_timeout_s=10.0):
        requests += 1
    t2 = time.monotonic()
    await client.disconnect()
    return {
        "connect_seconds": t1 - t0,
        "seconds": t2 - t1,
        "requests": requests,
        "max_unencoded_size": tr.max_unencoded_size,
    }


def smp_upload(
    body: bytes,
    baud: int,
    latency_s: float,
    workdir: Path,
    transport: str = "console",
    buf_size: int = 384,
) -> dict[str, Any]:
    """One upload of ``body`` by smpclient to the SMP server double; figures as a dict."""
    workdir.mkdir(parents=True, exist_ok=True)
    slot = workdir / f"smp-{transport}-{buf_size}-{baud}.bin"
    image = mcuboot_image(body)
    with LineSim(baud=baud, latency_s=latency_s) as sim:
        srv = subprocess.Popen(
            [sys.executable, "-m", "bench.smp_server", sim.device_path, "--slot", str(slot),
             "--transport", transport, "--buf-size", str(buf_size)],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert srv.stdout is not None
            if srv.stdout.readline().strip() != "ready":
                raise RuntimeError("SMP server did not start")
            r = asyncio.run(_client_upload(sim.host_path, image, transport, buf_size, baud))
        finally:
            srv.terminate()
            out, _ = srv.communicate(timeout=10)
        counters = sim.counters()
    stats = json.loads(out.strip().splitlines()[-1])
    if slot.read_bytes()[: len(image)] != image or stats["match"] is not True:
        raise RuntimeError(f"SMP upload did not land intact: {stats}")
    r.update(
        ratio=len(body) / r["seconds"] / (baud / 10),
        image_bytes=len(body),
        upload_bytes=len(image),
        tx_bytes=counters["bytes_h2d"],
        rx_bytes=counters["bytes_d2h"],
        buf_size=buf_size,
        server=stats,
    )
    return r
