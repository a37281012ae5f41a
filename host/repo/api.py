"""Python API of the repositories: ``ImageRepo`` (all images) and ``DirectorRepo`` (one vehicle).

A repository is a working directory::

    REPO/repo.json                 kind, vehicle id, expiry periods, online key files
    REPO/metadata/root_history/N.root.json, root.json, targets.json, snapshot.json, timestamp.json
    REPO/targets/NAME              image files (Image repository only)

``publish(out)`` writes the static TUF layout any web server / CDN can serve (consistent
snapshots)::

    OUT/metadata/N.root.json  OUT/metadata/root.json  OUT/metadata/timestamp.json
    OUT/metadata/V.snapshot.json  OUT/metadata/V.targets.json
    OUT/targets/SHA256.NAME

Online keys (targets, snapshot, timestamp, instruction) are recorded in ``repo.json`` and used
automatically; root keys are offline and passed to ``create``/``rotate_*``/``sign``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Self

from otalink.host.repo import keys as keymod
from otalink.host.repo.atomic import write_atomic
from otalink.host.repo.instruction import Instruction, encode_instruction, sign_instruction

# the payload classes live in tuf.api._payload; tuf.api.metadata re-exports them implicitly,
# which mypy --strict does not accept
from tuf.api._payload import MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import Metadata
from tuf.api.serialization.json import JSONSerializer

TOP_ROLES = ("root", "targets", "snapshot", "timestamp")
ONLINE_ROLES = ("targets", "snapshot", "timestamp")
KINDS = ("bundle", "firmware")
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
DEFAULT_INSTRUCTION_TTL = 30 * 86400
_SER = JSONSerializer(compact=False)


class RepoError(Exception):
    """A repository operation cannot be done (missing keys, threshold not met, bad input)."""

    code = "repo.error"


class ThresholdError(RepoError):
    """A role's metadata carries fewer valid signatures than its threshold."""

    code = "repo.threshold"


@dataclass(frozen=True)
class ImageTarget:
    """An image as the Image repository lists it (what the Director assigns)."""

    name: str
    length: int
    sha256: str
    version: str
    release_counter: int
    hardware_ids: tuple[str, ...]
    kind: str = "firmware"

    @classmethod
    def from_target_file(cls, tf: TargetFile) -> ImageTarget:
        c: dict[str, Any] = dict(tf.custom)
        return cls(
            name=tf.path,
            length=tf.length,
            sha256=tf.hashes["sha256"],
            version=str(c["version"]),
            release_counter=int(c["release_counter"]),
            hardware_ids=tuple(c["hardware_ids"]),
            kind=str(c.get("kind", "firmware")),
        )


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class _Repo:
    """Shared machinery of both repositories."""

    path: Path
    config: dict[str, Any]
    online: dict[str, list[keymod.KeyPair]] = field(default_factory=dict)

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
        thresholds = dict(thresholds or {})
        exp = {**DEFAULT_EXPIRY[cls.KIND], **(expiry or {})}
        config: dict[str, Any] = {
            "kind": cls.KIND,
            "expiry": exp,
            "online_keys": {
                role: list(key_files[role]) if key_files and role in key_files else []
                for role in (*ONLINE_ROLES, "instruction")
            },
            **(extra or {}),
        }
        repo = cls(path=path, config=config)
        for role in (*ONLINE_ROLES, "instruction"):
            repo.online[role] = list(online_keys.get(role, ()))
        root = Root(expires=_now() + timedelta(seconds=exp["root"]), consistent_snapshot=True)
        for key in root_keys:
            root.add_key(key.public, "root")
        for role in ONLINE_ROLES:
            if not online_keys.get(role):
                raise RepoError(f"no key for role {role}")
            for key in online_keys[role]:
                root.add_key(key.public, role)
        for role, n in thresholds.items():
            if role not in TOP_ROLES:
                raise RepoError(f"unknown role {role}")
            if n < 1 or n > len(root.roles[role].keyids):
                raise RepoError(f"threshold {n} for {role} out of range")
            root.roles[role].threshold = n
        root_md = Metadata(root)
        for key in root_keys:
            root_md.sign(key.signer, append=True)
        path.mkdir(parents=True, exist_ok=True)
        (path / "metadata" / "root_history").mkdir(parents=True, exist_ok=True)
        (path / "targets").mkdir(exist_ok=True)
        repo._save_root(root_md)
        targets = Metadata(Targets(expires=repo._expires("targets")))
        repo._save("targets", targets)
        repo._save_config()
        repo._cascade(targets_changed=True)
        return repo

    @classmethod
    def open(cls, path: Path | str) -> Self:
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

    # ---- metadata files -----------------------------------------------------------------------
    def _md_path(self, role: str) -> Path:
        return self.path / "metadata" / f"{role}.json"

    def load(self, role: str) -> Metadata[Any]:
        """Current (possibly partially signed) metadata of a top-level role."""
        return Metadata.from_file(str(self._md_path(role)))

    def root(self) -> Metadata[Root]:
        md: Metadata[Root] = self.load("root")
        return md

    def targets(self) -> Metadata[Targets]:
        md: Metadata[Targets] = self.load("targets")
        return md

    def _save(self, role: str, md: Metadata[Any]) -> None:
        write_atomic(self._md_path(role), md.to_bytes(_SER))

    def _save_root(self, md: Metadata[Root]) -> None:
        data = md.to_bytes(_SER)
        write_atomic(
            self.path / "metadata" / "root_history" / f"{md.signed.version}.root.json", data
        )
        write_atomic(self._md_path("root"), data)

    def _expires(self, role: str) -> datetime:
        return _now() + timedelta(seconds=int(self.config["expiry"][role]))

    def set_expiry(self, role: str, seconds: int) -> None:
        """Change a role's expiry period (applies at its next signing; negative = already expired,
        for tests of freeze attacks)."""
        self.config["expiry"][role] = int(seconds)
        self._save_config()

    def _sign_online(self, role: str, md: Metadata[Any]) -> None:
        keys = self.online.get(role) or []
        if not keys:
            raise RepoError(f"no online key for {role}: pass it or use `sign`")
        md.signatures.clear()
        for key in keys:
            md.sign(key.signer, append=True)

    def _bump(self, role: str, md: Metadata[Any]) -> None:
        md.signed.version += 1
        md.signed.expires = self._expires(role)

    def _cascade(self, *, targets_changed: bool = False) -> None:
        """Re-sign targets (if changed), then a new snapshot and timestamp."""
        targets = self.targets()
        if targets_changed:
            if self._md_path("snapshot").exists():
                self._bump("targets", targets)
            self._sign_online("targets", targets)
            self._save("targets", targets)
        if self._md_path("snapshot").exists():
            snapshot: Metadata[Snapshot] = self.load("snapshot")
            self._bump("snapshot", snapshot)
        else:
            snapshot = Metadata(Snapshot(expires=self._expires("snapshot")))
        snapshot.signed.meta["targets.json"] = MetaFile(version=targets.signed.version)
        self._sign_online("snapshot", snapshot)
        self._save("snapshot", snapshot)
        self._new_timestamp(snapshot.signed.version)

    def _new_timestamp(self, snapshot_version: int) -> None:
        if self._md_path("timestamp").exists():
            ts: Metadata[Timestamp] = self.load("timestamp")
            self._bump("timestamp", ts)
        else:
            ts = Metadata(Timestamp(expires=self._expires("timestamp")))
        ts.signed.snapshot_meta = MetaFile(version=snapshot_version)
        self._sign_online("timestamp", ts)
        self._save("timestamp", ts)

    def refresh_timestamp(self) -> None:
        """New timestamp version (and expiry) for the current snapshot: the periodic online job."""
        snap: Metadata[Snapshot] = self.load("snapshot")
        self._new_timestamp(snap.signed.version)

    def resign(self, role: str) -> None:
        """New version of an online role with a fresh expiry (and the chain above it)."""
        if role == "targets":
            self._cascade(targets_changed=True)
        elif role == "snapshot":
            self._cascade()
        elif role == "timestamp":
            self.refresh_timestamp()
        else:
            raise RepoError("use rotate_root for root")

    # ---- threshold signing and rotation -----------------------------------------------------
    def sign(self, role: str, key: keymod.KeyPair) -> None:
        """Add ``key``'s signature to the current metadata of ``role`` (threshold roles)."""
        md = self.load(role)
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
        md = self.root()
        old_keyids = {role: set(md.signed.roles[role].keyids) for role in ONLINE_ROLES}
        for role, keyids in (remove or {}).items():
            for kid in keyids:
                md.signed.revoke_key(kid, role)
        for role, ks in (add or {}).items():
            for k in ks:
                md.signed.add_key(k.public, role)
        for role, n in (thresholds or {}).items():
            md.signed.roles[role].threshold = n
        for role in TOP_ROLES:
            r = md.signed.roles[role]
            if not r.keyids or r.threshold > len(r.keyids):
                raise RepoError(f"role {role}: threshold {r.threshold} > {len(r.keyids)} keys")
        self._bump("root", md)
        md.signatures.clear()
        for key in signing_keys:
            md.sign(key.signer, append=True)
        self._save_root(md)
        changed = [
            role for role in ONLINE_ROLES if old_keyids[role] != set(md.signed.roles[role].keyids)
        ]
        if "targets" in changed:
            self._cascade(targets_changed=True)
        elif "snapshot" in changed:
            self._cascade()
        elif "timestamp" in changed:
            self.refresh_timestamp()
        return int(md.signed.version)

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
        old = list(self.root().signed.roles[role].keyids)
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
        root = self.root().signed
        for role in ONLINE_ROLES:
            md2 = self.load(role)
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
            md = self.load(role)
            _copy_if_changed(self._md_path(role), md_out / f"{md.signed.version}.{role}.json")
        for p in (self.path / "metadata" / "root_history").glob("*.root.json"):
            _copy_if_changed(p, md_out / p.name)
        _copy_if_changed(self._md_path("root"), md_out / "root.json")
        _copy_if_changed(self._md_path("timestamp"), md_out / "timestamp.json")
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


def _copy_if_changed(src: Path, dst: Path) -> None:
    data = src.read_bytes()
    if dst.exists() and dst.read_bytes() == data:
        return
    write_atomic(dst, data)


def _hashed_name(name: str, sha256: str) -> str:
    dirname, sep, base = name.rpartition("/")
    return f"{dirname}{sep}{sha256}.{base}"


def _check_name(name: str) -> None:
    if not name or name.startswith("/") or ".." in name.split("/") or len(name) > 64:
        raise RepoError(f"bad target name {name!r} (relative, no '..', at most 64 chars)")


class ImageRepo(_Repo):
    """The Image repository: every image, with the custom fields the vehicle shows and checks."""

    KIND: ClassVar[str] = "image"

    @classmethod
    def create(
        cls,
        path: Path | str,
        *,
        root_keys: Sequence[keymod.KeyPair],
        targets_keys: Sequence[keymod.KeyPair],
        snapshot_keys: Sequence[keymod.KeyPair],
        timestamp_keys: Sequence[keymod.KeyPair],
        thresholds: Mapping[str, int] | None = None,
        expiry: Mapping[str, int] | None = None,
        key_files: Mapping[str, Sequence[str]] | None = None,
    ) -> ImageRepo:
        """Create a new Image repository (root signed by every root key given)."""
        return cls._create(
            Path(path),
            root_keys=root_keys,
            online_keys={
                "targets": targets_keys,
                "snapshot": snapshot_keys,
                "timestamp": timestamp_keys,
            },
            thresholds=thresholds,
            expiry=expiry,
            key_files=key_files,
        )

    def add_image(
        self,
        name: str,
        data: bytes | Path,
        *,
        hardware_ids: Iterable[str],
        version: str,
        release_counter: int,
        title: str = "",
        release_notes: str = "",
        est_install_s: int = 60,
        unavailable_functions: Iterable[str] = (),
        kind: str = "firmware",
        deflate_wbits: int | None = None,
    ) -> ImageTarget:
        """Add (or replace) an image; with ``deflate_wbits`` also publish its raw-deflate form
        as target ``NAME.deflate`` (window 2**wbits, 9..15) and record it in ``compressed``."""
        _check_name(name)
        if kind not in KINDS:
            raise RepoError(f"kind must be one of {KINDS}")
        hw = sorted(set(hardware_ids))
        if not hw:
            raise RepoError("at least one hardware id")
        if len(version.encode()) > 32 or any(len(h.encode()) > 32 for h in hw):
            raise RepoError("version and hardware ids are at most 32 bytes")
        if release_counter < 0:
            raise RepoError("release counter must be >= 0")
        blob = data.read_bytes() if isinstance(data, Path) else bytes(data)
        md = self.targets()
        custom: dict[str, Any] = {
            "title": title or name,
            "version": version,
            "release_counter": int(release_counter),
            "release_notes": release_notes,
            "hardware_ids": hw,
            "est_install_s": int(est_install_s),
            "unavailable_functions": list(unavailable_functions),
            "kind": kind,
        }
        if deflate_wbits is not None:
            if not 9 <= deflate_wbits <= 15:
                raise RepoError("deflate wbits must be 9..15")
            co = zlib.compressobj(9, zlib.DEFLATED, -deflate_wbits)
            zdata = co.compress(blob) + co.flush()
            zname = f"{name}.deflate"
            _check_name(zname)
            ztf = TargetFile.from_data(zname, zdata, ["sha256"])
            ztf.unrecognized_fields["custom"] = {"compressed_form_of": name, "wbits": deflate_wbits}
            md.signed.targets[zname] = ztf
            self._store(zname, zdata)
            custom["compressed"] = {
                "target": zname,
                "length": len(zdata),
                "sha256": ztf.hashes["sha256"],
                "wbits": deflate_wbits,
            }
        tf = TargetFile.from_data(name, blob, ["sha256"])
        tf.unrecognized_fields["custom"] = custom
        md.signed.targets[name] = tf
        self._store(name, blob)
        self._save("targets", md)
        self._cascade(targets_changed=True)
        return ImageTarget.from_target_file(tf)

    def remove_image(self, name: str) -> None:
        md = self.targets()
        md.signed.targets.pop(name, None)
        md.signed.targets.pop(f"{name}.deflate", None)
        self._save("targets", md)
        self._cascade(targets_changed=True)

    def _store(self, name: str, data: bytes) -> None:
        write_atomic(self.path / "targets" / name, data)

    def image(self, name: str) -> ImageTarget:
        """The listed image ``name`` (``KeyError`` if absent)."""
        return ImageTarget.from_target_file(self.targets().signed.targets[name])

    def images(self) -> list[ImageTarget]:
        return [
            ImageTarget.from_target_file(tf)
            for tf in self.targets().signed.targets.values()
            if "compressed_form_of" not in tf.custom
        ]

    def _publish_targets(self, out: Path) -> None:
        for name, tf in self.targets().signed.targets.items():
            _copy_if_changed(
                self.path / "targets" / name, out / _hashed_name(name, tf.hashes["sha256"])
            )

    def publish_into_server(self, server_root: Path | str) -> Path:
        """Publish under ``SERVER_ROOT/image`` (the layout ``otalink server`` serves)."""
        return self.publish(Path(server_root) / "image")


class DirectorRepo(_Repo):
    """The Director repository of one vehicle: per-ECU assignments + signed install instructions.

    Target paths are ``ECU_ID/IMAGE_NAME``; the custom fields carry ``ecu_id``, ``hardware_id``,
    ``release_counter``, ``version``, ``kind``, ``image`` (the Image-repository target name),
    ``instruction`` (base64 of the exact signed CBOR bytes) and ``instruction_sigs``
    (``[[keyid hex, signature hex], ...]``).
    """

    KIND: ClassVar[str] = "director"

    @property
    def vehicle_id(self) -> str:
        return str(self.config["vehicle_id"])

    @classmethod
    def create(
        cls,
        path: Path | str,
        *,
        vehicle_id: str,
        root_keys: Sequence[keymod.KeyPair],
        targets_keys: Sequence[keymod.KeyPair],
        snapshot_keys: Sequence[keymod.KeyPair],
        timestamp_keys: Sequence[keymod.KeyPair],
        instruction_keys: Sequence[keymod.KeyPair],
        thresholds: Mapping[str, int] | None = None,
        expiry: Mapping[str, int] | None = None,
        instruction_ttl_s: int = DEFAULT_INSTRUCTION_TTL,
        key_files: Mapping[str, Sequence[str]] | None = None,
    ) -> DirectorRepo:
        """Create the Director repository of ``vehicle_id``."""
        if not instruction_keys:
            raise RepoError("at least one instruction key")
        return cls._create(
            Path(path),
            root_keys=root_keys,
            online_keys={
                "targets": targets_keys,
                "snapshot": snapshot_keys,
                "timestamp": timestamp_keys,
                "instruction": instruction_keys,
            },
            thresholds=thresholds,
            expiry=expiry,
            extra={"vehicle_id": vehicle_id, "instruction_ttl_s": int(instruction_ttl_s)},
            key_files=key_files,
        )

    def assign(
        self,
        ecu_id: str,
        hw_id: str,
        image: ImageTarget,
        *,
        issued: int | None = None,
        expires: int | None = None,
    ) -> bytes:
        """Assign ``image`` to ``ecu_id`` (replacing its previous assignment); returns the signed
        instruction bytes. The hardware id must be one the image is built for."""
        if hw_id not in image.hardware_ids:
            raise RepoError(f"image {image.name} is not built for hardware {hw_id!r}")
        if len(ecu_id.encode()) > 32 or "/" in ecu_id or not ecu_id:
            raise RepoError("ecu id: 1..32 bytes, no '/'")
        return self.assign_unchecked(ecu_id, hw_id, image, issued=issued, expires=expires)

    def assign_unchecked(
        self,
        ecu_id: str,
        hw_id: str,
        image: ImageTarget,
        *,
        issued: int | None = None,
        expires: int | None = None,
    ) -> bytes:
        """``assign`` without the hardware check (tests build hostile Directors with it)."""
        issued = int(time.time()) if issued is None else issued
        if expires is None:
            expires = issued + int(self.config.get("instruction_ttl_s", DEFAULT_INSTRUCTION_TTL))
        ins = Instruction(
            ecu_id=ecu_id,
            hw_id=hw_id,
            version=image.version,
            release_counter=image.release_counter,
            image_len=image.length,
            sha256=bytes.fromhex(image.sha256),
            issued=issued,
            expires=expires,
            target=image.name,
            kind=KINDS.index(image.kind),
        )
        data = encode_instruction(ins)
        sigs = [sign_instruction(data, k.seed) for k in self.online.get("instruction", [])]
        if not sigs:
            raise RepoError("no instruction key")
        md = self.targets()
        for path in [p for p in md.signed.targets if p.split("/", 1)[0] == ecu_id]:
            del md.signed.targets[path]
        path = f"{ecu_id}/{image.name}"
        tf = TargetFile(length=image.length, hashes={"sha256": image.sha256}, path=path)
        tf.unrecognized_fields["custom"] = {
            "ecu_id": ecu_id,
            "hardware_id": hw_id,
            "release_counter": image.release_counter,
            "version": image.version,
            "kind": image.kind,
            "image": image.name,
            "instruction": base64.b64encode(data).decode(),
            "instruction_sigs": [[k.hex(), s.hex()] for k, s in sigs],
        }
        md.signed.targets[path] = tf
        self._save("targets", md)
        self._cascade(targets_changed=True)
        return data

    def unassign(self, ecu_id: str | None = None) -> None:
        """Drop the assignment of one ECU (or of all ECUs)."""
        md = self.targets()
        for path in list(md.signed.targets):
            if ecu_id is None or path.split("/", 1)[0] == ecu_id:
                del md.signed.targets[path]
        self._save("targets", md)
        self._cascade(targets_changed=True)

    def assignments(self) -> dict[str, dict[str, Any]]:
        """ecu_id -> custom fields of its current assignment."""
        return {
            str(tf.custom["ecu_id"]): dict(tf.custom)
            for tf in self.targets().signed.targets.values()
        }

    def instruction_public_keys(self) -> list[bytes]:
        """Raw ed25519 public keys the ECUs must trust for instructions."""
        return [k.public_raw for k in self.online.get("instruction", [])]

    def publish_into_server(self, server_root: Path | str) -> Path:
        """Publish under ``SERVER_ROOT/director/VEHICLE_ID``."""
        return self.publish(Path(server_root) / "director" / self.vehicle_id)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


__all__ = [
    "DirectorRepo",
    "ImageRepo",
    "ImageTarget",
    "RepoError",
    "ThresholdError",
    "sha256_hex",
]
