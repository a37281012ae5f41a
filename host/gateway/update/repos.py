"""The two python-tuf repositories of the vehicle: opening an ngclient ``Updater`` on the
trusted root, target file names, and python-tuf's exceptions mapped to the update errors."""

from __future__ import annotations

import re
from pathlib import Path

from otalink.host.gateway.update.errors import (
    BelowThresholdError,
    ConnectivityError,
    DownloadError,
    EndlessDataError,
    FreezeError,
    HttpStatusError,
    RepositoryMetadataError,
    RollbackError,
    SignatureError,
    SlowRetrievalError,
    UpdateError,
)
from otalink.host.gateway.update.fetcher import OtalinkFetcher
from tuf.api import exceptions as tuf_exc
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
        return SlowRetrievalError(msg)
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
