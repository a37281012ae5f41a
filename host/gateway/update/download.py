"""Resumable, verified target downloads.

A target is downloaded into ``NAME.part`` with a sidecar ``NAME.part.json`` (identity: sha256,
length; and the last durable offset). After any interruption — a broken connection, a stopped
campaign, a killed process — the next attempt asks for ``Range: bytes=OFFSET-`` where OFFSET is
the size of the partial file, so no byte before the break is fetched again. Then the whole file is
checked against the trusted length and sha256 and renamed into place.

Retries: connection failures and 5xx are retried with the host's one retry policy
(``otalink.host.retry``: exponential backoff with full jitter, ``policy.retry``), at most
``policy.max_attempts`` times in a row without progress (and 4x that in total); 4xx are not
retried. The throughput watchdog (``BodyReader``) turns a trickle into ``SlowRetrievalError``, a
``ConnectivityError``: like a dropped link, it keeps every byte received for the next attempt.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from otalink.host.fsutil import fsync_dir, write_atomic
from otalink.host.gateway.update.errors import (
    ConnectivityError,
    DownloadInterrupted,
    EndlessDataError,
    HttpStatusError,
    StorageError,
    TargetIntegrityError,
    UpdateError,
)
from otalink.host.gateway.update.http import BodyReader, Response, Transport, header_uint
from otalink.host.gateway.update.types import DownloadPolicy
from otalink.host.retry import SYSTEM_CLOCK, Clock

_CONTENT_RANGE = re.compile(r"bytes ([0-9]+)-([0-9]+)/([0-9]+|\*)", re.ASCII)

ChunkCallback = Callable[[int, int, int, int], None]  # done, total, resumed_from, attempt


@dataclass
class DownloadStats:
    """What one ``fetch`` did on the wire (tests and benches read it)."""

    attempts: int = 0
    bytes_received: int = 0  # body bytes read from the network
    bytes_discarded: int = 0  # bytes received again because a server ignored Range
    resumed_from: list[int] = field(default_factory=list)  # start offset of every request
    failures: list[str] = field(default_factory=list)  # error code of every failed attempt


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


class Downloader:
    """Downloads one target at a time into a directory, resuming partial files."""

    def __init__(
        self,
        transport: Transport,
        policy: DownloadPolicy | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.transport = transport
        self.policy = policy or transport.policy
        self.clock = clock  # the backoff waits between attempts
        self.last_stats = DownloadStats()

    def fetch(
        self,
        url: str,
        dest: Path,
        length: int,
        sha256: str,
        *,
        on_chunk: ChunkCallback | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        verify: Callable[[Path], bool] | None = None,
    ) -> Path:
        """Download ``url`` to ``dest`` and verify it; returns ``dest``.

        Raises ``DownloadInterrupted`` (partial kept), ``ConnectivityError``/``SlowRetrievalError``
        after the retries, ``HttpStatusError`` (4xx at once), ``EndlessDataError`` and
        ``TargetIntegrityError`` (partial deleted). ``verify(path) -> bool`` replaces the sha256
        comparison (``sha256`` then only identifies the partial file), e.g. TUF's
        ``TargetFile.verify_length_and_hashes`` for targets with other hash algorithms.
        """
        check = verify or (lambda p: file_sha256(p) == sha256)
        stats = self.last_stats = DownloadStats()
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists() and dest.stat().st_size == length and check(dest):
            return dest
        part = dest.with_name(dest.name + ".part")
        side = dest.with_name(dest.name + ".part.json")
        offset = self._resume_offset(part, side, length, sha256, url)
        retry = self.policy.retry
        stalled = 0  # consecutive failed attempts without progress
        total_failures = 0
        while offset < length:
            if should_stop():
                raise DownloadInterrupted("download stopped", reason="stopped")
            stats.attempts += 1
            before = offset
            try:
                offset = self._attempt(
                    url, part, side, offset, length, sha256, stats, on_chunk, should_stop
                )
            except (EndlessDataError, TargetIntegrityError):
                # the server's copy is not the trusted file: nothing of it is kept
                part.unlink(missing_ok=True)
                side.unlink(missing_ok=True)
                raise
            except HttpStatusError as exc:
                if not exc.retryable:
                    raise
                err: UpdateError = exc
            except ConnectivityError as exc:  # SlowRetrievalError included
                err = exc
            else:
                continue
            offset = part.stat().st_size if part.exists() else 0
            stats.failures.append(err.code)
            total_failures += 1
            stalled = 0 if offset > before else stalled + 1
            if retry.exhausted(stalled) or total_failures >= 4 * retry.attempts:
                if isinstance(err, ConnectivityError) and total_failures > stalled:
                    err.reason = "unstable"
                raise err
            if not retry.sleep(retry.delay(stalled), clock=self.clock, should_stop=should_stop):
                raise DownloadInterrupted("download stopped", reason="stopped")
        return self._finish(part, side, dest, length, sha256, check)

    # ---- internals ------------------------------------------------------------------------------
    def _resume_offset(self, part: Path, side: Path, length: int, sha256: str, url: str) -> int:
        try:
            state = json.loads(side.read_text())
            same = state.get("sha256") == sha256 and state.get("length") == length
        except (OSError, ValueError):
            same = False
        size = part.stat().st_size if part.exists() else 0
        if not same or size > length:
            part.unlink(missing_ok=True)
            size = 0
            self._write_side(side, url, length, sha256, 0)
        return size

    @staticmethod
    def _write_side(side: Path, url: str, length: int, sha256: str, offset: int) -> None:
        doc = {"url": url, "length": length, "sha256": sha256, "offset": offset}
        write_atomic(side, json.dumps(doc).encode())

    def _attempt(
        self,
        url: str,
        part: Path,
        side: Path,
        offset: int,
        length: int,
        sha256: str,
        stats: DownloadStats,
        on_chunk: ChunkCallback | None,
        should_stop: Callable[[], bool],
    ) -> int:
        """One request from ``offset``; returns the new offset (data fsynced, sidecar updated)."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        stats.resumed_from.append(offset)
        resp = self.transport.open(url, headers)
        skip = 0
        if resp.status == 416:
            resp.close()
            # our offset is past what the server has: the file changed or was truncated
            part.unlink(missing_ok=True)
            raise TargetIntegrityError(
                f"server has fewer than {offset} bytes of a {length}-byte target",
                reason="partial",
            )
        if resp.status == 206:
            m = _CONTENT_RANGE.fullmatch(resp.headers.get("content-range", "").strip())
            if not m or header_uint(m.group(1)) != offset:
                resp.close()
                raise ConnectivityError("bad Content-Range from server", reason="unstable")
            total = header_uint(m.group(3))  # None for "*"
            if total is not None:
                self._check_size(resp, total, length)
        elif resp.status == 200:
            skip = offset  # Range ignored: the body starts at 0
            clen = header_uint(resp.headers.get("content-length"))
            if clen is not None:
                self._check_size(resp, clen, length)
        else:
            resp.close()
            raise HttpStatusError(f"unexpected HTTP {resp.status} for {url}", resp.status)
        reader = BodyReader(resp, length - offset + skip, self.policy)
        since_sync = 0
        try:
            with open(part, "ab") as f:
                if f.tell() != offset:
                    f.truncate(offset)
                for chunk in reader.chunks():
                    stats.bytes_received += len(chunk)
                    if skip:
                        cut = min(skip, len(chunk))
                        skip -= cut
                        stats.bytes_discarded += cut
                        chunk = chunk[cut:]
                        if not chunk:
                            continue
                    try:
                        f.write(chunk)
                    except OSError as exc:
                        raise StorageError(f"cannot write {part}: {exc}") from exc
                    offset += len(chunk)
                    since_sync += len(chunk)
                    if since_sync >= self.policy.checkpoint_bytes:
                        self._checkpoint(f, side, url, length, sha256, offset)
                        since_sync = 0
                    if on_chunk is not None:
                        on_chunk(offset, length, stats.resumed_from[-1], stats.attempts)
                    if should_stop():
                        self._checkpoint(f, side, url, length, sha256, offset)
                        raise DownloadInterrupted("download stopped", reason="stopped")
                self._checkpoint(f, side, url, length, sha256, offset)
        except ConnectivityError:  # a slow link (SlowRetrievalError) included
            # keep what arrived before the break: fsync it so the resume offset is durable
            if part.exists():
                with open(part, "ab") as f2:
                    self._checkpoint(f2, side, url, length, sha256, part.stat().st_size)
            raise
        if offset < length:
            raise ConnectivityError("connection closed before the end", reason="unstable")
        return offset

    @staticmethod
    def _check_size(resp: Response, size: int, length: int) -> None:
        """The server's file must have exactly the trusted length."""
        if size > length:
            resp.close()
            raise EndlessDataError(
                f"server has {size} bytes, {length} are trusted", reason="endless_data"
            )
        if size < length:
            resp.close()
            raise TargetIntegrityError(
                f"server has only {size} of the {length} trusted bytes", reason="partial"
            )

    def _checkpoint(
        self, f: IO[bytes], side: Path, url: str, length: int, sha256: str, offset: int
    ) -> None:
        f.flush()
        os.fsync(f.fileno())
        self._write_side(side, url, length, sha256, offset)

    def _finish(
        self,
        part: Path,
        side: Path,
        dest: Path,
        length: int,
        sha256: str,
        check: Callable[[Path], bool],
    ) -> Path:
        size = part.stat().st_size
        if size != length or not check(part):
            part.unlink(missing_ok=True)
            side.unlink(missing_ok=True)
            raise TargetIntegrityError(
                f"{dest.name}: got {size} bytes that do not match the trusted "
                f"{length} bytes / hash {sha256[:16]}",
                reason="hash_mismatch",
            )
        os.replace(part, dest)
        side.unlink(missing_ok=True)
        fsync_dir(dest.parent)
        return dest
