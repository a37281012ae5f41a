"""The machinery both repositories share: a working directory of TUF metadata and its keys.

``RepoBase`` is a ``tuf.repository.Repository``: python-tuf bumps versions and keeps snapshot and
timestamp in step (``edit_targets()``, ``do_snapshot()``, ``do_timestamp()``); this module
stores the metadata files (``open``/``close``), signs with the repository's keys, and adds
threshold signing, key rotation, checks and publishing. The layout::

    REPO/repo.json                 kind, vehicle id, expiry periods, online key files
    REPO/metadata/root_history/N.root.json, root.json, targets.json, snapshot.json, timestamp.json
    REPO/targets/NAME              image files (Image repository only)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Self

from otalink.host.errors import ToolError
from otalink.host.fsutil import write_atomic
from otalink.host.tools.repo import keys as keymod

# the payload classes live in tuf.api._payload and the Repository in tuf.repository._repository;
# the public modules re-export them implicitly, which mypy --strict does not accept
from tuf.api._payload import MetaFile, Root, Signed, Snapshot, Targets, Timestamp
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import Metadata
from tuf.api.serialization.json import JSONSerializer
from tuf.repository._repository import Repository

TOP_ROLES = ("root", "targets", "snapshot", "timestamp")
ONLINE_ROLES = ("targets", "snapshot", "timestamp")
DEFAULT_EXPIRY: dict[str, dict[str, int]] = {
    "image": {
        "root": 365 * 86400,
        "targets": 90 * 86400,
        "snapshot": 7 * 86400,
        "timestamp": 86400,
    },
    "director": {
        "root": 365 * 86400,
        "targets": 30 * 86400,
        "snapshot": 7 * 86400,
        "timestamp": 86400,
    },
}
_SER = JSONSerializer(compact=False)
_NEW: dict[str, Callable[[], Signed]] = {
    "root": Root,
    "targets": Targets,
    "snapshot": Snapshot,
    "timestamp": Timestamp,
}


class RepoError(ToolError):
    """A repository operation cannot be done (missing keys, threshold not met, bad input)."""

    code = "repo.error"


class ThresholdError(RepoError):
    """A role's metadata carries fewer valid signatures than its threshold."""

    code = "repo.threshold"


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class RepoBase(Repository):
    """What both repositories share: the working directory (persistence) and the keys.

    python-tuf's ``Repository`` does the bookkeeping: ``edit_*()`` (version + 1, fresh expiry,
    signed), ``do_snapshot()`` (a new snapshot when a targets version changed) and
    ``do_timestamp()`` (a new timestamp for a new snapshot); this class stores the metadata
    (:meth:`open`, :meth:`close`) and adds threshold signing, rotation and publishing.
    """

    path: Path
    config: dict[str, Any]
    online: dict[str, list[keymod.KeyPair]] = field(default_factory=dict)
    _root_keys: list[keymod.KeyPair] = field(default_factory=list, repr=False)

    KIND: ClassVar[str] = ""

    # ---- creation / loading -----------------------------------------------------------------
    @classmethod
    def _create(
        cls,
        path: Path,
        *,
        root_keys: Sequence[keymod.KeyPair],
        online_keys: Mapping[str, Sequence[keymod.KeyPair]],
        thresholds: Mapping[str, int] | None = None,
        expiry: Mapping[str, int] | None = None,
        extra: Mapping[str, Any] | None = None,
        key_files: Mapping[str, Sequence[str]] | None = None,
    ) -> Self:
        path = Path(path)
        if (path / "repo.json").exists():
            raise RepoError(f"{path} already holds a repository")
        keys = {"root": list(root_keys), **{r: list(online_keys.get(r, ())) for r in ONLINE_ROLES}}
        for role in ONLINE_ROLES:
            if not keys[role]:
                raise RepoError(f"no key for role {role}")
        for role, n in (thresholds or {}).items():
            if role not in TOP_ROLES:
                raise RepoError(f"unknown role {role}")
            if n < 1 or n > len({k.keyid for k in keys[role]}):
                raise RepoError(f"threshold {n} for {role} out of range")
        config: dict[str, Any] = {
            "kind": cls.KIND,
            "expiry": {**DEFAULT_EXPIRY[cls.KIND], **(expiry or {})},
            "online_keys": {
                role: list(key_files[role]) if key_files and role in key_files else []
                for role in (*ONLINE_ROLES, "instruction")
            },
            **(extra or {}),
        }
        repo = cls(path=path, config=config)
        for role in (*ONLINE_ROLES, "instruction"):
            repo.online[role] = list(online_keys.get(role, ()))
        (path / "metadata" / "root_history").mkdir(parents=True, exist_ok=True)
        (path / "targets").mkdir(exist_ok=True)
        with repo._signing_root(root_keys), repo.edit_root() as root:
            for role, ks in keys.items():
                for key in ks:
                    root.add_key(key.public, role)
            for role, n in (thresholds or {}).items():
                root.roles[role].threshold = n
        repo._save_config()
        repo.resign("targets")
        return repo

    @classmethod
    def from_dir(cls, path: Path | str) -> Self:
        """Load a repository working directory and its online keys."""
        path = Path(path)
        config = json.loads((path / "repo.json").read_text())
        if config.get("kind") != cls.KIND:
            raise RepoError(f"{path} is a {config.get('kind')} repository, not {cls.KIND}")
        repo = cls(path=path, config=config)
        for role, files in config["online_keys"].items():
            repo.online[role] = [keymod.load(_abs(path, f)) for f in files]
        return repo

    def _save_config(self) -> None:
        write_atomic(self.path / "repo.json", json.dumps(self.config, indent=1).encode())

    # ---- tuf.repository.Repository: storage ---------------------------------------------------
    def _md_path(self, role: str) -> Path:
        return self.path / "metadata" / f"{role}.json"

    def open(self, role: str) -> Metadata[Any]:
        """Current (possibly partially signed) metadata of a top-level role; a role without
        any yet gets version 0, which :meth:`close` stores as version 1."""
        p = self._md_path(role)
        if p.exists():
            return Metadata.from_file(str(p))
        md: Metadata[Any] = Metadata(_NEW[role]())
        md.signed.version = 0
        return md

    def close(self, role: str, md: Metadata[Any]) -> None:
        """Store a new version of ``role``: version + 1, fresh expiry, signed by its keys
        (the online keys; root: the keys given to the edit, see :meth:`rotate_root`)."""
        md.signed.version += 1
        md.signed.expires = self._expires(role)
        keys = self._root_keys if role == "root" else self.online.get(role) or []
        if not keys and role != "root":
            raise RepoError(f"no online key for {role}: pass it or use `sign`")
        md.signatures.clear()
        for key in keys:
            md.sign(key.signer, append=True)
        if role == "root":
            self._save_root(md)
        else:
            self._save(role, md)

    @property
    def targets_infos(self) -> dict[str, MetaFile]:
        return {"targets.json": MetaFile(version=self.targets().version)}

    @property
    def snapshot_info(self) -> MetaFile:
        return MetaFile(version=self.snapshot().version)

    def _save(self, role: str, md: Metadata[Any]) -> None:
        write_atomic(self._md_path(role), md.to_bytes(_SER))

    def _save_root(self, md: Metadata[Root]) -> None:
        data = md.to_bytes(_SER)
        write_atomic(
            self.path / "metadata" / "root_history" / f"{md.signed.version}.root.json", data
        )
        write_atomic(self._md_path("root"), data)

    @contextmanager
    def _signing_root(self, keys: Sequence[keymod.KeyPair]) -> Iterator[None]:
        """The (offline) root keys that sign a root edit inside this block."""
        self._root_keys = list(keys)
        try:
            yield
        finally:
            self._root_keys = []

    def _expires(self, role: str) -> datetime:
        return _now() + timedelta(seconds=int(self.config["expiry"][role]))

    def set_expiry(self, role: str, seconds: int) -> None:
        """Change a role's expiry period (applies at its next signing; negative = already expired,
        for tests of freeze attacks)."""
        self.config["expiry"][role] = int(seconds)
        self._save_config()

    def _targets_changed(self) -> None:
        """After a new targets version: the snapshot and the timestamp that pin it."""
        self.do_snapshot()
        self.do_timestamp()

    def resign(self, role: str) -> None:
        """New version of an online role with a fresh expiry (and the chain above it): the
        periodic online job (``timestamp``) and what follows a key change."""
        if role == "targets":
            with self.edit_targets():
                pass
            self._targets_changed()
        elif role == "snapshot":
            self.do_snapshot(force=True)
            self.do_timestamp()
        elif role == "timestamp":
            self.do_timestamp(force=True)
        else:
            raise RepoError("use rotate_root for root")

    # ---- threshold signing and rotation -----------------------------------------------------
    def sign(self, role: str, key: keymod.KeyPair) -> None:
        """Add ``key``'s signature to the current metadata of ``role`` (threshold roles)."""
        md = self.open(role)
        md.sign(key.signer, append=True)
        if role == "root":
            self._save_root(md)
        else:
            self._save(role, md)

    def rotate_root(
        self,
        signing_keys: Sequence[keymod.KeyPair],
        *,
        add: Mapping[str, Sequence[keymod.KeyPair]] | None = None,
        remove: Mapping[str, Sequence[str]] | None = None,
        thresholds: Mapping[str, int] | None = None,
    ) -> int:
        """New root version with keys added/removed (``remove``: role -> keyids) and thresholds.

        ``signing_keys`` sign it — a rotation needs the threshold of the old root keys and of the
        new ones; sign later with ``sign('root', key)`` to add missing signatures. Returns the new
        root version. Online roles whose keys changed are re-signed with the new online keys (see
        ``set_online_keys``).
        """
        old = {role: set(self.root().roles[role].keyids) for role in ONLINE_ROLES}
        with self._signing_root(signing_keys), self.edit_root() as root:
            for role, keyids in (remove or {}).items():
                for kid in keyids:
                    root.revoke_key(kid, role)
            for role, ks in (add or {}).items():
                for k in ks:
                    root.add_key(k.public, role)
            for role, n in (thresholds or {}).items():
                root.roles[role].threshold = n
            for role in TOP_ROLES:
                r = root.roles[role]
                if not r.keyids or r.threshold > len(r.keyids):
                    raise RepoError(f"role {role}: threshold {r.threshold} > {len(r.keyids)} keys")
        new = self.root()
        # the lowest changed role is re-signed, and the roles above it with it
        for role in ONLINE_ROLES:
            if old[role] != set(new.roles[role].keyids):
                self.resign(role)
                break
        return int(new.version)

    def set_online_keys(
        self, role: str, keys: Sequence[keymod.KeyPair], files: Sequence[str]
    ) -> None:
        """Replace the online keys the tool signs ``role`` with (after/with a root rotation)."""
        self.online[role] = list(keys)
        self.config["online_keys"][role] = list(files)
        self._save_config()

    def rotate_online_key(
        self,
        role: str,
        new_keys: Sequence[keymod.KeyPair],
        new_files: Sequence[str],
        root_keys: Sequence[keymod.KeyPair],
        threshold: int | None = None,
    ) -> int:
        """Replace every key of an online role (compromise or schedule); needs the root keys."""
        old = list(self.root().roles[role].keyids)
        self.set_online_keys(role, new_keys, new_files)
        return self.rotate_root(
            root_keys,
            add={role: new_keys},
            remove={role: old},
            thresholds={role: threshold or len(new_keys)} if threshold or len(new_keys) else None,
        )

    # ---- verification and publishing --------------------------------------------------------
    def check(self) -> list[str]:
        """Problems that stop publishing (roles below threshold), empty if all is well."""
        problems: list[str] = []
        history = sorted(
            (self.path / "metadata" / "root_history").glob("*.root.json"),
            key=lambda p: int(p.name.split(".")[0]),
        )
        prev: Metadata[Root] | None = None
        for p in history:
            md: Metadata[Root] = Metadata.from_file(str(p))
            for trusted in (prev, md) if prev is not None else (md,):
                try:
                    trusted.signed.verify_delegate("root", md.signed_bytes, md.signatures)
                except UnsignedMetadataError as exc:
                    problems.append(f"root v{md.signed.version}: {exc}")
            prev = md
        root = self.root()
        for role in ONLINE_ROLES:
            md2 = self.open(role)
            try:
                root.verify_delegate(role, md2.signed_bytes, md2.signatures)
            except UnsignedMetadataError as exc:
                problems.append(f"{role} v{md2.signed.version}: {exc}")
        return problems

    def publish(self, out: Path | str, *, unchecked: bool = False) -> Path:
        """Write the servable layout into ``out`` (old versions kept; timestamp written last).

        Refuses (``ThresholdError``) while a role lacks signatures; ``unchecked`` skips that —
        only tests use it, to play a compromised repository.
        """
        out = Path(out)
        problems = [] if unchecked else self.check()
        if problems:
            raise ThresholdError("; ".join(problems))
        md_out = out / "metadata"
        md_out.mkdir(parents=True, exist_ok=True)
        (out / "targets").mkdir(parents=True, exist_ok=True)
        self._publish_targets(out / "targets")
        for role in ("targets", "snapshot"):
            md = self.open(role)
            copy_if_changed(self._md_path(role), md_out / f"{md.signed.version}.{role}.json")
        for p in (self.path / "metadata" / "root_history").glob("*.root.json"):
            copy_if_changed(p, md_out / p.name)
        copy_if_changed(self._md_path("root"), md_out / "root.json")
        copy_if_changed(self._md_path("timestamp"), md_out / "timestamp.json")
        return out

    def _publish_targets(self, out: Path) -> None:
        """Image files under their hash-prefixed names (Image repository only)."""

    def publish_into_server(self, server_root: Path | str) -> Path:
        """Publish where ``otalink server --root SERVER_ROOT`` serves this repository."""
        raise NotImplementedError

    def root_bytes(self) -> bytes:
        """The current root metadata (what a vehicle is provisioned with)."""
        return self._md_path("root").read_bytes()


def _abs(base: Path, f: str) -> Path:
    p = Path(f)
    return p if p.is_absolute() else (base / p)


def copy_if_changed(src: Path, dst: Path) -> None:
    """Write ``dst`` (atomically) unless it already holds ``src``'s bytes."""
    data = src.read_bytes()
    if dst.exists() and dst.read_bytes() == data:
        return
    write_atomic(dst, data)
