"""A whole update world per test: keys, Image + Director repositories, the embedded server,
and an UpdateClient configured like the agent (provisioned roots, ECU inventory)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from otalink.host.fsutil import not_durable
from otalink.host.gateway.update.client import UpdateClient
from otalink.host.gateway.update.types import DownloadPolicy, EcuInfo, UpdateConfig
from otalink.host.tools.repo.api import ImageTarget
from otalink.host.tools.repo.quick import RepoSet, create_repos
from otalink.host.tools.server.app import ServerHandle, start_server

VIN = "VIN0001"
ECUS = (EcuInfo("brake", "brake-v1"), EcuInfo("bms", "bms-v2"))
# quick backoff and a short watchdog window keep the failure tests fast
FAST = DownloadPolicy(
    connect_timeout_s=2.0,
    read_timeout_s=2.0,
    max_attempts=3,
    backoff_base_s=0.01,
    backoff_max_s=0.05,
    min_throughput_bps=1024,
    throughput_window_s=0.5,
    chunk_size=16 * 1024,
    checkpoint_bytes=64 * 1024,
)


@dataclass
class World:
    tmp: Path
    repos: RepoSet
    server_root: Path
    server: ServerHandle
    images: dict[str, bytes] = field(default_factory=dict)

    @property
    def director(self):  # type: ignore[no-untyped-def]
        return self.repos.director(VIN)

    def publish(self) -> None:
        self.repos.publish(self.server_root)

    def add_image(self, name: str, size: int, hw: str, rc: int, **kw: object) -> ImageTarget:
        data = hashlib.shake_256(f"{name}-{rc}".encode()).digest(size)
        self.images[name] = data
        return self.repos.image.add_image(
            name,
            data,
            hardware_ids=[hw],
            version=f"{rc}.0",
            release_counter=rc,
            title=name.split("-")[0].upper(),
            release_notes=f"release {rc}",
            est_install_s=30,
            unavailable_functions=["driving"],
            **kw,  # type: ignore[arg-type]
        )

    def config(self, server_url: str | None = None, **kw: object) -> UpdateConfig:
        roots = self.tmp / "provisioned"
        roots.mkdir(exist_ok=True)
        if not (roots / "image-root.json").exists():
            (roots / "image-root.json").write_bytes(self.repos.image.root_bytes())
        if not (roots / "director-root.json").exists():
            (roots / "director-root.json").write_bytes(self.director.root_bytes())
        base = UpdateConfig(
            server_url=server_url or self.server.url,
            vehicle_id=VIN,
            state_dir=self.tmp / "vehicle",
            image_root=roots / "image-root.json",
            director_root=roots / "director-root.json",
            ecus=ECUS,
            instruction_keys=tuple(k.hex() for k in self.repos.instruction_public_keys()),
            policy=FAST,
        )
        return replace(base, **kw)  # type: ignore[arg-type]

    def client(self, server_url: str | None = None, **kw: object) -> UpdateClient:
        return UpdateClient(self.config(server_url, **kw))

    def downloads(self) -> list[str]:
        d = self.tmp / "vehicle" / "downloads"
        return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def build_world(tmp: Path) -> World:
    with not_durable():  # throw-away repositories: atomic writes without fsync
        return _build_world(tmp)


def _build_world(tmp: Path) -> World:
    repos = create_repos(tmp / "repos", [VIN])
    server_root = tmp / "srv"
    srv = start_server(server_root, test_controls=True)
    w = World(tmp=tmp, repos=repos, server_root=server_root, server=srv)
    brake = w.add_image("brake-2.0.bin", 300_000, "brake-v1", 2)
    bms = w.add_image("bms-5.1.bin", 120_000, "bms-v2", 5, kind="bundle")
    w.director.assign("brake", "brake-v1", brake)
    w.director.assign("bms", "bms-v2", bms)
    w.publish()
    w.config()  # provision the roots the vehicle shipped with (version 1)
    return w


@pytest.fixture(autouse=True)
def _no_fsync() -> Iterator[None]:
    """Repositories here are throw-away and no test cuts the power: skip fsync (~10 ms each on
    this disk), keep the atomic renames."""
    with not_durable():
        yield


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = build_world(tmp_path)
    try:
        yield w
    finally:
        w.server.stop()


def image_bytes(size: int, seed: str = "x") -> bytes:
    return hashlib.shake_256(seed.encode()).digest(size) if size else b""
