"""Plain data of the update layer: configuration, plans, progress (all JSON-serialisable)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from otalink.host.retry import RetryPolicy

Network = Literal["wifi", "cellular", "none"]
KIND_CODES: dict[str, int] = {"bundle": 0, "firmware": 1}


@dataclass(frozen=True)
class EcuInfo:
    """One ECU of the vehicle inventory, as the host knows it."""

    ecu_id: str
    hw_id: str
    release_floor: int = 0  # highest release counter known installed: lower ones are rollbacks


@dataclass(frozen=True)
class DownloadPolicy:
    """Timeouts, retries and the throughput watchdog of downloads (and metadata fetches)."""

    connect_timeout_s: float = 10.0
    read_timeout_s: float = 15.0  # longest gap between two received bytes
    header_timeout_s: float = 30.0  # the whole response head (status + headers) must arrive
    max_attempts: int = 6  # per target, per download() call; connection failures only
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    min_throughput_bps: int = 1024  # below this over a whole window: slow retrieval
    throughput_window_s: float = 10.0
    chunk_size: int = 64 * 1024
    checkpoint_bytes: int = 4 * 1024 * 1024  # fsync partial file + sidecar this often

    @property
    def retry(self) -> RetryPolicy:
        """The backoff between attempts (the host's one retry policy, full jitter)."""
        return RetryPolicy(self.max_attempts, self.backoff_base_s, self.backoff_max_s)


@dataclass(frozen=True)
class UpdateConfig:
    """Where the repositories are, where trusted state lives, and what the vehicle has.

    ``server_url`` serves ``image/`` and ``director/<vehicle_id>/`` (see docs/host.md); the
    ``*_url`` fields override single locations (e.g. an Image repository on a CDN or RSTUF).
    ``image_root``/``director_root`` are the roots provisioned at manufacture; once the metadata
    directories hold a trusted root they are only used if the directory is empty.
    """

    server_url: str
    vehicle_id: str
    state_dir: Path
    image_root: Path | None = None
    director_root: Path | None = None
    ecus: tuple[EcuInfo, ...] = ()
    instruction_keys: tuple[str, ...] = ()  # hex ed25519 public keys; empty: host skips sig check
    image_metadata_url: str | None = None
    image_targets_url: str | None = None
    director_metadata_url: str | None = None
    target_dir: Path | None = None
    policy: DownloadPolicy = field(default_factory=DownloadPolicy)

    def urls(self) -> tuple[str, str, str]:
        """(image metadata, image targets, director metadata) base URLs, with trailing slash."""
        base = self.server_url.rstrip("/")
        im = self.image_metadata_url or f"{base}/image/metadata/"
        it = self.image_targets_url or f"{base}/image/targets/"
        dm = self.director_metadata_url or f"{base}/director/{self.vehicle_id}/metadata/"
        return _slash(im), _slash(it), _slash(dm)

    @property
    def image_metadata_dir(self) -> Path:
        return self.state_dir / "tuf" / "image"

    @property
    def director_metadata_dir(self) -> Path:
        return self.state_dir / "tuf" / "director"

    @property
    def downloads_dir(self) -> Path:
        return self.target_dir or (self.state_dir / "downloads")


def _slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


@dataclass(frozen=True)
class CompressedForm:
    """The raw-deflate form of an image, published as its own Image-repository target."""

    target: str
    length: int
    sha256: str  # hex
    wbits: int


@dataclass(frozen=True)
class ImageInfo:
    """What the screen shows about one image (from the Image repository's custom fields)."""

    target: str
    title: str
    version: str
    release_counter: int
    release_notes: str
    length: int
    sha256: str  # hex
    hardware_ids: tuple[str, ...]
    kind: str  # bundle | firmware
    est_install_s: int
    unavailable_functions: tuple[str, ...]
    compressed: CompressedForm | None = None


@dataclass(frozen=True)
class EcuAssignment:
    """One ECU's verified assignment: everything the ECU client needs for BEGIN."""

    ecu_id: str
    hw_id: str
    target: str
    length: int
    sha256: str  # hex of the raw image
    version: str
    release_counter: int
    kind: str
    instruction: bytes  # exact signed CBOR bytes, carried untouched to the ECU
    instruction_sigs: tuple[tuple[bytes, bytes], ...]  # (keyid 8 bytes, ed25519 sig 64 bytes)
    expires: int  # unix seconds, from the instruction
    base_sha256: str | None = None  # hex; format-2 instruction: the one base a patch may use

    @property
    def kind_code(self) -> int:
        return KIND_CODES[self.kind]

    @property
    def sha256_bytes(self) -> bytes:
        return bytes.fromhex(self.sha256)

    def sigs_for_wire(self) -> list[list[bytes]]:
        """``[[keyid, sig], ...]`` as BEGIN carries them."""
        return [[k, s] for k, s in self.instruction_sigs]


@dataclass(frozen=True)
class Delivery:
    """What one ECU gets (``deltas.py``): a patch target of its image, or the full image
    and why (``reason``: ``delta.none_listed``, ``delta.base_not_active``, ...; "" if none)."""

    target: str  # the Image-repository target downloaded and sent
    length: int
    sha256: str  # hex of that target
    base_version: str | None = None  # set: a patch from this version
    base_sha256: str | None = None
    reason: str = ""
    # the target's raw-deflate form, downloaded instead and inflated into ``target`` ("": none)
    fetch_target: str = ""
    fetch_length: int = 0
    fetch_sha256: str = ""

    @property
    def is_delta(self) -> bool:
        return self.base_version is not None

    @property
    def download_length(self) -> int:
        """What crosses the vehicle's network for it."""
        return self.fetch_length if self.fetch_target else self.length

    @property
    def label(self) -> str:
        """What the screen shows: "12 kB, delta from 2.0.0" or "250 kB, full image"."""
        size = f"{max(1, round(self.download_length / 1000))} kB"
        return f"{size}, delta from {self.base_version}" if self.is_delta else f"{size}, full image"


@dataclass(frozen=True)
class UpdatePlan:
    """The verified result of ``UpdateClient.check()``: per-ECU assignments + image metadata."""

    vehicle_id: str
    assignments: tuple[EcuAssignment, ...]
    images: dict[str, ImageInfo]
    director_version: int  # Director targets metadata version the plan came from
    image_version: int  # Image targets metadata version
    deliveries: dict[str, Delivery] = field(default_factory=dict)  # ecu_id -> what it gets

    @property
    def plan_id(self) -> str:
        """Stable id of this plan (same assignments -> same id)."""
        import hashlib

        h = hashlib.sha256()
        for a in sorted(self.assignments, key=lambda a: a.ecu_id):
            h.update(f"{a.ecu_id}|{a.target}|{a.sha256}|{a.release_counter}\n".encode())
        return h.hexdigest()[:16]

    def delivery(self, ecu_id: str) -> Delivery:
        """What ``ecu_id`` gets (its full image unless a patch was chosen)."""
        d = self.deliveries.get(ecu_id)
        if d is not None:
            return d
        a = next(a for a in self.assignments if a.ecu_id == ecu_id)
        return Delivery(a.target, a.length, a.sha256)

    def payloads(self) -> dict[str, tuple[int, str]]:
        """Every target to download: name -> (length, sha256 hex)."""
        out: dict[str, tuple[int, str]] = {}
        for a in self.assignments:
            d = self.delivery(a.ecu_id)
            out[d.target] = (d.length, d.sha256)
        return out

    def fetches(self) -> dict[str, Delivery]:
        """Every target to download, by the name it is stored under (a patch: its own)."""
        return {(d := self.delivery(a.ecu_id)).target: d for a in self.assignments}

    @property
    def download_size(self) -> int:
        return sum(d.download_length for d in self.fetches().values())

    @property
    def est_install_s(self) -> int:
        return sum(i.est_install_s for i in self.images.values())

    @property
    def unavailable_functions(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for i in self.images.values():
            for f in i.unavailable_functions:
                seen[f] = None
        return tuple(seen)

    @property
    def title(self) -> str:
        """The images' titles (each once, sorted, joined by " + ")."""
        return " + ".join(sorted({i.title for i in self.images.values()}))

    @property
    def release_notes(self) -> str:
        """The images' release notes as written (each distinct text once, blank-line separated):
        no title/version prefix, the screen shows ``title`` and ``version`` on their own."""
        notes = dict.fromkeys(i.release_notes.strip() for i in self.images.values())
        return "\n\n".join(n for n in notes if n)

    def to_json(self) -> str:
        """JSON text (bytes as hex) the campaign can persist and reload with ``from_json``."""
        d = asdict(self)
        if not d["deliveries"]:
            del d["deliveries"]  # a plan without patches is written as before delta updates
        for a in d["assignments"]:
            if a["base_sha256"] is None:
                del a["base_sha256"]
            a["instruction"] = a["instruction"].hex()
            a["instruction_sigs"] = [[k.hex(), s.hex()] for k, s in a["instruction_sigs"]]
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> UpdatePlan:
        d: dict[str, Any] = json.loads(text)
        assignments = tuple(
            EcuAssignment(
                **{
                    **a,
                    "instruction": bytes.fromhex(a["instruction"]),
                    "instruction_sigs": tuple(
                        (bytes.fromhex(k), bytes.fromhex(s)) for k, s in a["instruction_sigs"]
                    ),
                }
            )
            for a in d["assignments"]
        )
        images = {}
        for name, i in d["images"].items():
            comp = CompressedForm(**i["compressed"]) if i.get("compressed") else None
            images[name] = ImageInfo(
                **{
                    **i,
                    "hardware_ids": tuple(i["hardware_ids"]),
                    "unavailable_functions": tuple(i["unavailable_functions"]),
                    "compressed": comp,
                }
            )
        return cls(
            vehicle_id=d["vehicle_id"],
            assignments=assignments,
            images=images,
            director_version=d["director_version"],
            image_version=d["image_version"],
            deliveries={k: Delivery(**v) for k, v in d.get("deliveries", {}).items()},
        )


@dataclass(frozen=True)
class DownloadProgress:
    """Progress of ``UpdateClient.download`` (called at least once per chunk)."""

    target: str
    done: int  # bytes of this target on disk
    total: int
    overall_done: int
    overall_total: int
    rate_bps: float
    resumed_from: int  # offset this attempt started at (0 = fresh)
    attempt: int


@dataclass(frozen=True)
class ProbeResult:
    """Result of ``UpdateClient.probe()``: can the update server be reached right now?"""

    ok: bool
    reason: str  # "" when ok; no_connection | http_<status> | slow
    latency_s: float
