"""The host's update client: refresh both repositories, cross-check, download.

Public API (stable; changes are noted here first)::

    client = UpdateClient(UpdateConfig(server_url=..., vehicle_id=..., state_dir=...,
                                       image_root=..., director_root=..., ecus=(EcuInfo(...),)))
    plan = client.check(installed={"brake": 3})   # UpdatePlan | None; TrustError/DownloadError
    files = client.download(plan, progress, should_stop, network="wifi", allow_metered=False)
    client.probe() -> ProbeResult                  # is the server reachable right now?
    client.downloaded(plan) -> dict | None         # all targets already complete and verified?

``check`` never downloads an image. ``download`` raises ``NeedsPermissionError`` on a metered link
without permission, ``ConnectivityError`` (reason ``no_connection``/``unstable``) when a stable
connection is required, ``DownloadInterrupted`` when ``should_stop()`` said so; partial files are
kept and the next ``download`` resumes them.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib import parse

from otalink.host.repo.instruction import decode_instruction, verify_instruction
from otalink.host.update.download import Downloader, DownloadStats
from otalink.host.update.errors import (
    BelowThresholdError,
    ConnectivityError,
    DownloadError,
    EndlessDataError,
    FreezeError,
    HttpStatusError,
    InstructionError,
    MixAndMatchError,
    NeedsPermissionError,
    RepositoryMetadataError,
    RollbackError,
    SignatureError,
    SlowRetrievalError,
    TrustError,
    UnknownEcuError,
    UpdateError,
    WrongHardwareError,
)
from otalink.host.update.fetcher import OtalinkFetcher
from otalink.host.update.http import Transport
from otalink.host.update.types import (
    KIND_CODES,
    CompressedForm,
    DownloadPolicy,
    DownloadProgress,
    EcuAssignment,
    EcuInfo,
    ImageInfo,
    Network,
    ProbeResult,
    UpdateConfig,
    UpdatePlan,
)
from tuf.api import exceptions as tuf_exc
from tuf.api._payload import TargetFile, Targets  # implicit re-exports in tuf.api.metadata
from tuf.api.metadata import Metadata
from tuf.ngclient.updater import Updater

_SIGNED_BY = re.compile(r"signed by (\d+)/(\d+)")


def map_tuf_error(exc: BaseException, repo: str) -> UpdateError:
    """Translate a python-tuf exception into the update error family (``repo`` names the repo)."""
    if isinstance(exc, UpdateError):
        return exc
    msg = f"{repo} repository: {exc}"
    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, UpdateError):
            cause.message = f"{repo} repository: {cause.message}"
            return cause
        cause = cause.__cause__
    if isinstance(exc, tuf_exc.UnsignedMetadataError):
        m = _SIGNED_BY.search(str(exc))
        if m and 0 < int(m.group(1)) < int(m.group(2)):
            return BelowThresholdError(msg, reason="below_threshold")
        return SignatureError(msg, reason="bad_signature")
    if isinstance(exc, tuf_exc.BadVersionNumberError):
        return RollbackError(msg, reason="metadata_version")
    if isinstance(exc, tuf_exc.ExpiredMetadataError):
        return FreezeError(msg, reason="expired")
    if isinstance(exc, tuf_exc.RepositoryError):
        return RepositoryMetadataError(msg, reason="metadata")
    if isinstance(exc, tuf_exc.DownloadLengthMismatchError):
        return EndlessDataError(msg, reason="endless_data")
    if isinstance(exc, tuf_exc.SlowRetrievalError):
        return SlowRetrievalError(msg, reason="slow")
    if isinstance(exc, tuf_exc.DownloadHTTPError):
        return HttpStatusError(msg, exc.status_code)
    if isinstance(exc, tuf_exc.DownloadError):
        return ConnectivityError(msg, reason="unstable")
    if isinstance(exc, OSError):
        return DownloadError(f"{repo} repository: local metadata: {exc}")
    return RepositoryMetadataError(msg, reason="metadata")


def hashed_target_path(name: str, sha256: str) -> str:
    """Consistent-snapshot file name of a target: ``DIR/SHA256.BASENAME``."""
    dirname, sep, base = name.rpartition("/")
    return f"{dirname}{sep}{sha256}.{base}"


def open_updater(
    metadata_dir: Path,
    metadata_url: str,
    fetcher: OtalinkFetcher,
    bootstrap: Path | None,
    target_dir: Path | None = None,
    target_base_url: str | None = None,
) -> Updater:
    """An ngclient ``Updater`` trusting the cached root, or ``bootstrap`` on first use."""
    metadata_dir.mkdir(parents=True, exist_ok=True)
    boot: bytes | None = None
    if not (metadata_dir / "root.json").exists():
        if bootstrap is None:
            raise SignatureError(f"no trusted root in {metadata_dir} and none provisioned")
        boot = Path(bootstrap).read_bytes()
    try:
        return Updater(
            str(metadata_dir),
            metadata_url,
            str(target_dir) if target_dir else None,
            target_base_url,
            fetcher=fetcher,
            bootstrap=boot,
        )
    except Exception as exc:
        raise map_tuf_error(exc, "local") from exc


class UpdateClient:
    """Refreshes the Director and Image repositories, cross-checks them, downloads targets."""

    def __init__(self, cfg: UpdateConfig, transport: Transport | None = None) -> None:
        self.cfg = cfg
        self.transport = transport or Transport(cfg.policy)
        self.fetcher = OtalinkFetcher(self.transport)
        self.downloader = Downloader(self.transport, cfg.policy)
        self.image_metadata_url, self.image_targets_url, self.director_metadata_url = cfg.urls()
        self._image_updater: Updater | None = None
        self.last_stats: dict[str, DownloadStats] = {}  # per target, of the last download()

    def close(self) -> None:
        """Release pooled connections (the client stays usable: pools reopen on demand)."""
        self.transport.close()

    # ---- check ----------------------------------------------------------------------------------
    def refresh(self) -> tuple[Updater, Updater]:
        """Refresh Director, then Image metadata (fresh Updaters: ngclient refreshes once)."""
        director = open_updater(
            self.cfg.director_metadata_dir,
            self.director_metadata_url,
            self.fetcher,
            self.cfg.director_root,
        )
        image = open_updater(
            self.cfg.image_metadata_dir,
            self.image_metadata_url,
            self.fetcher,
            self.cfg.image_root,
        )
        for updater, name in ((director, "Director"), (image, "Image")):
            try:
                updater.refresh()
            except Exception as exc:
                raise map_tuf_error(exc, name) from exc
        self._image_updater = image
        return director, image

    def check(
        self, installed: Mapping[str, int] | None = None, now: float | None = None
    ) -> UpdatePlan | None:
        """Refresh both repositories and return the verified plan (``None``: nothing to do).

        ``installed`` maps ecu_id -> release counter currently installed (from the ECU reports);
        it raises the rollback floor above ``EcuInfo.release_floor``. Assignments equal to the
        floor are dropped (already installed); older ones raise ``RollbackError``.
        """
        _director, image = self.refresh()
        dtargets = self._director_targets()
        now = time.time() if now is None else now
        inventory = {e.ecu_id: e for e in self.cfg.ecus}
        installed = dict(installed or {})
        assignments: list[EcuAssignment] = []
        images: dict[str, ImageInfo] = {}
        seen: set[str] = set()
        for path, dtf in sorted(dtargets.signed.targets.items()):
            a, info = self._cross_check(path, dtf, image, inventory, now)
            if a.ecu_id in seen:
                raise MixAndMatchError(f"Director assigns two images to ECU {a.ecu_id}")
            seen.add(a.ecu_id)
            floor = max(inventory[a.ecu_id].release_floor, installed.get(a.ecu_id, 0))
            if a.release_counter < floor:
                raise RollbackError(
                    f"ECU {a.ecu_id}: release counter {a.release_counter} is older than the "
                    f"installed {floor}",
                    reason="release_counter",
                )
            if a.release_counter == floor:
                continue  # already installed (an ECU only accepts a strictly newer release)
            assignments.append(a)
            images[info.target] = info
        if not assignments:
            return None
        return UpdatePlan(
            vehicle_id=self.cfg.vehicle_id,
            assignments=tuple(assignments),
            images=images,
            director_version=int(dtargets.signed.version),
            image_version=int(self._image_targets_version()),
        )

    def _director_targets(self) -> Metadata[Targets]:
        # ngclient has verified and persisted exactly these bytes during refresh()
        path = self.cfg.director_metadata_dir / "targets.json"
        md: Metadata[Targets] = Metadata.from_file(str(path))
        return md

    def _image_targets_version(self) -> int:
        md: Metadata[Targets] = Metadata.from_file(
            str(self.cfg.image_metadata_dir / "targets.json")
        )
        return int(md.signed.version)

    def _cross_check(
        self,
        path: str,
        dtf: TargetFile,
        image: Updater,
        inventory: Mapping[str, EcuInfo],
        now: float,
    ) -> tuple[EcuAssignment, ImageInfo]:
        c: dict[str, Any] = dict(dtf.custom)
        try:
            ecu_id = str(c["ecu_id"])
            hw_id = str(c["hardware_id"])
            image_name = str(c["image"])
            rc = int(c["release_counter"])
            version = str(c["version"])
            instruction = base64.b64decode(str(c["instruction"]), validate=True)
            sigs = tuple(
                (bytes.fromhex(k), bytes.fromhex(s)) for k, s in list(c["instruction_sigs"])[:4]
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MixAndMatchError(
                f"Director target {path}: malformed custom fields ({exc})"
            ) from exc
        if path != f"{ecu_id}/{image_name}":
            raise MixAndMatchError(f"Director target {path} does not match ECU {ecu_id}")
        ecu = inventory.get(ecu_id)
        if ecu is None:
            raise UnknownEcuError(f"Director assigns {image_name} to unknown ECU {ecu_id}")
        if hw_id != ecu.hw_id:
            raise WrongHardwareError(
                f"ECU {ecu_id} is {ecu.hw_id!r}, the Director says {hw_id!r}", reason="wrong_hw"
            )
        try:
            itf = image.get_targetinfo(image_name)
        except Exception as exc:
            raise map_tuf_error(exc, "Image") from exc
        if itf is None:
            raise MixAndMatchError(f"Image repository does not list {image_name} ({ecu_id})")
        ic: dict[str, Any] = dict(itf.custom)
        try:
            hw_ids = tuple(str(h) for h in ic["hardware_ids"])
            img_rc = int(ic["release_counter"])
            info = ImageInfo(
                target=image_name,
                title=str(ic.get("title", image_name)),
                version=str(ic["version"]),
                release_counter=img_rc,
                release_notes=str(ic.get("release_notes", "")),
                length=itf.length,
                sha256=str(itf.hashes["sha256"]),
                hardware_ids=hw_ids,
                kind=str(ic.get("kind", "firmware")),
                est_install_s=int(ic.get("est_install_s", 0)),
                unavailable_functions=tuple(str(f) for f in ic.get("unavailable_functions", [])),
                compressed=CompressedForm(**ic["compressed"]) if ic.get("compressed") else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MixAndMatchError(f"Image target {image_name}: malformed custom fields") from exc
        if info.kind not in KIND_CODES:
            raise MixAndMatchError(f"Image target {image_name}: unknown kind {info.kind!r}")
        if hw_id not in hw_ids:
            raise WrongHardwareError(
                f"{image_name} is built for {list(hw_ids)}, not {hw_id!r} (ECU {ecu_id})",
                reason="wrong_hw",
            )
        if dtf.length != itf.length:
            raise MixAndMatchError(
                f"{image_name}: Director says {dtf.length} bytes, Image says {itf.length}"
            )
        common = set(dtf.hashes) & set(itf.hashes)
        if "sha256" not in common or any(dtf.hashes[h] != itf.hashes[h] for h in common):
            raise MixAndMatchError(f"{image_name}: Director and Image hashes differ")
        if rc != img_rc or version != info.version:
            raise MixAndMatchError(
                f"{image_name}: Director says release {rc} ({version}), "
                f"Image says {img_rc} ({info.version})"
            )
        try:
            ins = decode_instruction(instruction)
        except ValueError as exc:
            raise InstructionError(f"ECU {ecu_id}: {exc}") from exc
        expected = (ecu_id, hw_id, version, rc, itf.length, info.sha256, image_name, info.kind)
        got = (
            ins.ecu_id,
            ins.hw_id,
            ins.version,
            ins.release_counter,
            ins.image_len,
            ins.sha256.hex(),
            ins.target,
            next((k for k, v in KIND_CODES.items() if v == ins.kind), "?"),
        )
        if got != expected:
            raise InstructionError(f"ECU {ecu_id}: instruction fields disagree with the metadata")
        if ins.expires <= now:
            raise FreezeError(f"ECU {ecu_id}: install instruction expired", reason="expired")
        if self.cfg.instruction_keys:
            try:
                verify_instruction(
                    instruction, list(sigs), [bytes.fromhex(k) for k in self.cfg.instruction_keys]
                )
            except ValueError as exc:
                raise InstructionError(f"ECU {ecu_id}: {exc}", reason="bad_signature") from exc
        a = EcuAssignment(
            ecu_id=ecu_id,
            hw_id=hw_id,
            target=image_name,
            length=itf.length,
            sha256=info.sha256,
            version=version,
            release_counter=rc,
            kind=info.kind,
            instruction=instruction,
            instruction_sigs=sigs,
            expires=ins.expires,
        )
        return a, info

    # ---- download -------------------------------------------------------------------------------
    def target_path(self, name: str) -> Path:
        """Where ``download`` puts target ``name``."""
        return self.cfg.downloads_dir / parse.quote(name, "")

    def _wanted(self, plan: UpdatePlan, include_compressed: bool) -> list[tuple[str, int, str]]:
        out: dict[str, tuple[str, int, str]] = {}
        for info in plan.images.values():
            out[info.target] = (info.target, info.length, info.sha256)
            if include_compressed and info.compressed is not None:
                c = info.compressed
                out[c.target] = (c.target, c.length, c.sha256)
        return list(out.values())

    def download(
        self,
        plan: UpdatePlan,
        progress: Callable[[DownloadProgress], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        *,
        network: Network = "wifi",
        allow_metered: bool = False,
        include_compressed: bool = False,
    ) -> dict[str, Path]:
        """Download (resuming) and verify every image of ``plan``; target name -> local path."""
        if network == "none":
            raise ConnectivityError("no network connection", reason="no_connection")
        if network == "cellular" and not allow_metered:
            raise NeedsPermissionError(
                "downloading over cellular needs the driver's permission", reason="metered"
            )
        wanted = self._wanted(plan, include_compressed)
        overall_total = sum(length for _, length, _ in wanted)
        done_before = 0
        started = time.monotonic()
        received = 0
        result: dict[str, Path] = {}
        self.last_stats = {}
        for name, length, sha in wanted:
            url = self.image_targets_url + parse.quote(hashed_target_path(name, sha))
            base = done_before

            def on_chunk(
                done: int,
                total: int,
                resumed: int,
                attempt: int,
                _name: str = name,
                _base: int = base,
                _received: int = received,
            ) -> None:
                if progress is not None:
                    got = _received + self.downloader.last_stats.bytes_received
                    rate = got / max(1e-6, time.monotonic() - started)
                    progress(
                        DownloadProgress(
                            _name, done, total, _base + done, overall_total, rate, resumed, attempt
                        )
                    )

            result[name] = self.downloader.fetch(
                url, self.target_path(name), length, sha, on_chunk=on_chunk, should_stop=should_stop
            )
            self.last_stats[name] = self.downloader.last_stats
            received += self.downloader.last_stats.bytes_received
            done_before += length
            if progress is not None:
                rate = received / max(1e-6, time.monotonic() - started)
                progress(
                    DownloadProgress(name, length, length, done_before, overall_total, rate, 0, 0)
                )
        return result

    def downloaded(
        self, plan: UpdatePlan, include_compressed: bool = False
    ) -> dict[str, Path] | None:
        """The local files of ``plan`` if all are complete and verified, else ``None``."""
        from otalink.host.update.download import file_sha256

        out: dict[str, Path] = {}
        for name, length, sha in self._wanted(plan, include_compressed):
            p = self.target_path(name)
            if not p.exists() or p.stat().st_size != length or file_sha256(p) != sha:
                return None
            out[name] = p
        return out

    def discard(self, keep: UpdatePlan | None = None) -> None:
        """Delete downloads (complete or partial) that ``keep`` does not need."""
        names = (
            {self.target_path(n).name for n, _, _ in self._wanted(keep, True)} if keep else set()
        )
        d = self.cfg.downloads_dir
        if not d.is_dir():
            return
        for p in d.iterdir():
            stem = p.name.removesuffix(".part.json").removesuffix(".part")
            if stem not in names:
                p.unlink(missing_ok=True)

    # ---- connectivity ---------------------------------------------------------------------------
    def probe(self, timeout_s: float = 5.0) -> ProbeResult:
        """Can the update server be reached right now? (GET of the Image timestamp.)"""
        t = Transport(
            DownloadPolicy(connect_timeout_s=timeout_s, read_timeout_s=timeout_s, max_attempts=1)
        )
        start = time.monotonic()
        try:
            resp = t.open(self.image_metadata_url + "timestamp.json")
            resp.raw.read(65536)
            resp.close()
        except HttpStatusError as exc:
            return ProbeResult(False, f"http_{exc.status}", time.monotonic() - start)
        except SlowRetrievalError:
            return ProbeResult(False, "slow", time.monotonic() - start)
        except UpdateError as exc:
            return ProbeResult(
                False,
                exc.reason if exc.reason in ("no_connection", "unstable") else "no_connection",
                time.monotonic() - start,
            )
        except Exception:
            return ProbeResult(False, "unstable", time.monotonic() - start)
        finally:
            t.close()
        return ProbeResult(True, "", time.monotonic() - start)


__all__ = [
    "DownloadError",
    "TrustError",
    "UpdateClient",
    "hashed_target_path",
    "map_tuf_error",
    "open_updater",
]
