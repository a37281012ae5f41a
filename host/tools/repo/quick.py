"""One call to set up a whole update server (demo, tests, benches).

``create_repos(workdir, ["VIN1"])`` makes ``workdir/keys/`` (one ed25519 key per role),
``workdir/image/`` and ``workdir/director/VIN1/``; ``RepoSet.publish(server_root)`` writes what
``otalink server --root SERVER_ROOT`` serves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from otalink.host.tools.repo import keys as keymod
from otalink.host.tools.repo.api import DirectorRepo, ImageRepo

IMAGE_KEYS = ("image-root", "image-targets", "image-snapshot", "image-timestamp")
DIRECTOR_KEYS = (
    "director-root",
    "director-targets",
    "director-snapshot",
    "director-timestamp",
    "director-instruction",
)


@dataclass
class RepoSet:
    """An Image repository, one Director repository per vehicle, and their keys."""

    workdir: Path
    image: ImageRepo
    directors: dict[str, DirectorRepo] = field(default_factory=dict)

    @property
    def key_dir(self) -> Path:
        return self.workdir / "keys"

    def key(self, name: str) -> keymod.KeyPair:
        return keymod.load(self.key_dir / f"{name}.key")

    def director(self, vehicle_id: str) -> DirectorRepo:
        return self.directors[vehicle_id]

    def add_vehicle(self, vehicle_id: str, **kw: object) -> DirectorRepo:
        """Create the Director repository of one more vehicle (same Director keys)."""
        k = {n: self.key(n) for n in DIRECTOR_KEYS}
        files = {
            role: [str(self.key_dir / f"director-{role}.key")]
            for role in ("targets", "snapshot", "timestamp", "instruction")
        }
        d = DirectorRepo.create(
            self.workdir / "director" / vehicle_id,
            vehicle_id=vehicle_id,
            root_keys=[k["director-root"]],
            targets_keys=[k["director-targets"]],
            snapshot_keys=[k["director-snapshot"]],
            timestamp_keys=[k["director-timestamp"]],
            instruction_keys=[k["director-instruction"]],
            key_files=files,
            **kw,  # type: ignore[arg-type]
        )
        self.directors[vehicle_id] = d
        return d

    def publish(self, server_root: Path | str) -> Path:
        """Publish every repository into a server root; returns it."""
        root = Path(server_root)
        self.image.publish_into_server(root)
        for d in self.directors.values():
            d.publish_into_server(root)
        return root

    def instruction_public_keys(self) -> list[bytes]:
        return [self.key("director-instruction").public_raw]


def create_repos(workdir: Path | str, vehicle_ids: Sequence[str] = ()) -> RepoSet:
    """Generate keys and create the Image repository plus one Director per vehicle."""
    workdir = Path(workdir)
    kd = workdir / "keys"
    for name in (*IMAGE_KEYS, *DIRECTOR_KEYS):
        if not (kd / f"{name}.key").exists():
            keymod.generate(kd, name)
    k = {n: keymod.load(kd / f"{n}.key") for n in IMAGE_KEYS}
    image = ImageRepo.create(
        workdir / "image",
        root_keys=[k["image-root"]],
        targets_keys=[k["image-targets"]],
        snapshot_keys=[k["image-snapshot"]],
        timestamp_keys=[k["image-timestamp"]],
        key_files={
            role: [str(kd / f"image-{role}.key")] for role in ("targets", "snapshot", "timestamp")
        },
    )
    rs = RepoSet(workdir=workdir, image=image)
    for vid in vehicle_ids:
        rs.add_vehicle(vid)
    return rs


def open_repos(workdir: Path | str) -> RepoSet:
    """Reopen a ``create_repos`` tree."""
    workdir = Path(workdir)
    rs = RepoSet(workdir=workdir, image=ImageRepo.from_dir(workdir / "image"))
    ddir = workdir / "director"
    if ddir.is_dir():
        for p in sorted(ddir.iterdir()):
            if (p / "repo.json").exists():
                rs.directors[p.name] = DirectorRepo.from_dir(p)
    return rs
