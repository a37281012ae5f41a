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

The parts: ``repos.py`` (opening the two repositories, python-tuf's errors mapped),
``crosscheck.py`` (the Director/Image cross-check of one target), ``download.py`` (resumable,
verified downloads), ``http.py`` (the connection pool), ``instruction.py`` (the signed install
instruction).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib import parse

from otalink.host.gateway.update.crosscheck import cross_check
from otalink.host.gateway.update.deltas import inflate_form, offer
from otalink.host.gateway.update.download import Downloader, DownloadStats
from otalink.host.gateway.update.errors import (
    ConnectivityError,
    HttpStatusError,
    MixAndMatchError,
    NeedsPermissionError,
    RollbackError,
    SlowRetrievalError,
    UpdateError,
)
from otalink.host.gateway.update.fetcher import OtalinkFetcher
from otalink.host.gateway.update.http import Transport
from otalink.host.gateway.update.repos import hashed_target_path, map_tuf_error, open_updater
from otalink.host.gateway.update.types import (
    DownloadPolicy,
    DownloadProgress,
    EcuAssignment,
    ImageInfo,
    Network,
    ProbeResult,
    UpdateConfig,
    UpdatePlan,
)
from tuf.api._payload import Targets  # implicit re-exports in tuf.api.metadata
from tuf.api.metadata import Metadata
from tuf.ngclient.updater import Updater


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
            a, info = cross_check(path, dtf, image, inventory, now, self.cfg.instruction_keys)
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
            deliveries={a.ecu_id: offer(a, image) for a in assignments if a.base_sha256},
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

    # ---- download -------------------------------------------------------------------------------
    def target_path(self, name: str) -> Path:
        """Where ``download`` puts target ``name``."""
        return self.cfg.downloads_dir / parse.quote(name, "")

    def _wanted(self, plan: UpdatePlan, include_compressed: bool) -> list[tuple[str, int, str]]:
        out: dict[str, tuple[str, int, str]] = {}
        for name, d in plan.fetches().items():  # a chosen patch, else the image
            out[name] = (name, d.length, d.sha256)
            info = plan.images.get(name)
            if include_compressed and info is not None and info.compressed is not None:
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
        forms = {n: d for n, d in plan.fetches().items() if d.fetch_target}
        wanted = [
            (forms[n].fetch_target, forms[n].fetch_length, forms[n].fetch_sha256) if n in forms
            else (n, length, sha)
            for n, length, sha in self._wanted(plan, include_compressed)
        ]  # fmt: skip
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
            raw = next((d for d in forms.values() if d.fetch_target == name), None)
            if raw is not None:  # a patch's deflated form: the patch itself is what is kept
                result[raw.target] = inflate_form(result.pop(name), self.target_path(raw.target),
                                                  raw.length, raw.sha256)  # fmt: skip
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
        from otalink.host.gateway.update.download import file_sha256

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
        if keep:  # and the deflated forms of its patches (a partial one resumes)
            names |= {self.target_path(d.fetch_target).name for d in keep.fetches().values()}
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


__all__ = ["UpdateClient"]
