"""Trust-layer figures: update check latency, download throughput (embedded server and nginx),
and resume efficiency on a link cut ten times.

    python -m bench.bench_trust        (make bench-trust)

Prints the figures and writes build/bench/trust.json. Targets: resumed downloads fetch each byte
once (redownload_ratio == 1.000); a warm check() well under a second on loopback.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from pathlib import Path

from otalink.host.fsutil import not_durable
from otalink.host.gateway.update.client import UpdateClient
from otalink.host.gateway.update.download import Downloader
from otalink.host.gateway.update.http import Transport
from otalink.host.gateway.update.types import DownloadPolicy, EcuInfo, UpdateConfig
from otalink.host.tools.repo.quick import create_repos
from otalink.host.tools.server.app import start_server

from tests.gateway.update.netutil import CuttingProxy, nginx

ROOT = Path(__file__).resolve().parent.parent
BIG = 32 * 1024 * 1024
POLICY = DownloadPolicy(backoff_base_s=0.01, backoff_max_s=0.05)


def bench_check(tmp: Path) -> dict[str, float]:
    with not_durable():
        rs = create_repos(tmp / "repos", ["VIN1"])
        ecus = []
        for i in range(3):
            hw = f"hw{i}"
            img = rs.image.add_image(f"ecu{i}-2.bin", bytes(64 * 1024), hardware_ids=[hw],
                                     version="2.0", release_counter=2)  # fmt: skip
            rs.director("VIN1").assign(f"ecu{i}", hw, img)
            ecus.append(EcuInfo(f"ecu{i}", hw))
        rs.publish(tmp / "srv")
    (tmp / "ir.json").write_bytes(rs.image.root_bytes())
    (tmp / "dr.json").write_bytes(rs.director("VIN1").root_bytes())
    with start_server(tmp / "srv") as srv:
        client = UpdateClient(
            UpdateConfig(
                server_url=srv.url,
                vehicle_id="VIN1",
                state_dir=tmp / "veh",
                image_root=tmp / "ir.json",
                director_root=tmp / "dr.json",
                ecus=tuple(ecus),
            )
        )
        t = time.perf_counter()
        assert client.check() is not None
        cold = time.perf_counter() - t
        warm = []
        for _ in range(5):
            t = time.perf_counter()
            client.check()
            warm.append(time.perf_counter() - t)
    return {"check_cold_ms": cold * 1000, "check_warm_ms": sorted(warm)[2] * 1000}


def bench_download(url: str, tmp: Path, sha: str, tag: str) -> float:
    dl = Downloader(Transport(POLICY))
    t = time.perf_counter()
    dl.fetch(url, tmp / f"{tag}.bin", BIG, sha)
    return BIG / (time.perf_counter() - t) / 1e6


def main() -> None:
    data = hashlib.shake_256(b"bench").digest(BIG)
    sha = hashlib.sha256(data).hexdigest()
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        out.update(bench_check(tmp / "check"))
        www = tmp / "www"
        www.mkdir()
        (www / "big.bin").write_bytes(data)
        with start_server(www) as srv:
            out["embedded_mb_s"] = bench_download(f"{srv.url}/big.bin", tmp, sha, "e")
            cuts = [BIG // 11] * 10
            proxy = CuttingProxy(srv.port, cuts)
            dl = Downloader(Transport(POLICY))
            t = time.perf_counter()
            dl.fetch(f"{proxy.url}/big.bin", tmp / "cut.bin", BIG, sha)
            out["cut10_seconds"] = time.perf_counter() - t
            proxy.close()
            out["cut10_requests"] = len(dl.last_stats.resumed_from)
            out["redownload_ratio"] = dl.last_stats.bytes_received / BIG
        with nginx(www, tmp / "nginx") as url:
            out["nginx_mb_s"] = bench_download(f"{url}/big.bin", tmp, sha, "n")
    for k, v in out.items():
        print(f"{k:>20}: {v:.3f}" if isinstance(v, float) else f"{k:>20}: {v}")
    dest = ROOT / "build" / "bench" / "trust.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
