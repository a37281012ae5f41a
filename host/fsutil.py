"""The one atomic file write of the host: temp file in the same folder, fsync, rename, fsync the
folder, so a reader (or the next boot after a crash) sees the old content or the new, never half.

Every persisted host file goes through :func:`write_atomic`: the campaign record, the ECU cache
and reports (gateway), downloads' sidecars, repository metadata and key files (tools), ECU
records, ECU runner configs. ``mode`` is set before the rename, and the temp file is created
0600, so a private file is never readable by others, not even for a moment.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PRIVATE = 0o600
PUBLIC = 0o644

_durable = True


@contextmanager
def not_durable() -> Iterator[None]:
    """Skip the fsyncs inside this block (still atomic): for throw-away repositories that tests
    and benchmarks build by the dozen. Never used by the agent."""
    global _durable
    old, _durable = _durable, False
    try:
        yield
    finally:
        _durable = old


def write_atomic(path: Path, data: bytes, *, mode: int = PUBLIC) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if _durable:
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)


def write_json(path: Path, obj: Any, *, mode: int = PRIVATE) -> None:
    """Atomically write ``obj`` as JSON (indented, sorted keys: stable bytes for the same data)."""
    write_atomic(path, json.dumps(obj, indent=1, sort_keys=True).encode(), mode=mode)


def read_json(path: Path) -> Any | None:
    """The decoded JSON at ``path``, or None if absent."""
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return None


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename in it is durable."""
    if not _durable:
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
