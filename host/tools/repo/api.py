"""Python API of the repositories: ``ImageRepo`` (all images) and ``DirectorRepo`` (one vehicle).

Both are :class:`~otalink.host.tools.repo.base.RepoBase` (a ``tuf.repository.Repository``: the
working directory, keys, rotation, publishing); this module holds what is Uptane's: the images
with the custom fields a vehicle shows and checks, and the Director's per-ECU assignments with
their signed install instructions.

``publish(out)`` writes the static TUF layout any web server / CDN can serve (consistent
snapshots)::

    OUT/metadata/N.root.json  OUT/metadata/root.json  OUT/metadata/timestamp.json
    OUT/metadata/V.snapshot.json  OUT/metadata/V.targets.json
    OUT/targets/SHA256.NAME

Online keys (targets, snapshot, timestamp, instruction) are recorded in ``repo.json`` and used
automatically; root keys are offline and passed to ``create``/``rotate_*``/``sign``.
``ImageRepo.from_dir(path)`` reopens one; ``repo.open(role)`` is a role's current metadata,
``repo.root()``/``repo.targets()`` its signed part.
"""

from __future__ import annotations

import base64
import hashlib
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from otalink.host.fsutil import write_atomic
from otalink.host.gateway.update.instruction import Instruction, encode_instruction
from otalink.host.keys import KeyPair
from otalink.host.tools.repo import delta
from otalink.host.tools.repo import keys as keymod
from otalink.host.tools.repo.base import RepoBase, RepoError, ThresholdError, copy_if_changed
from tuf.api._payload import TargetFile  # implicit re-export in tuf.api.metadata

KINDS = ("bundle", "firmware")
DEFAULT_INSTRUCTION_TTL = 30 * 86400


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


def _hashed_name(name: str, sha256: str) -> str:
    dirname, sep, base = name.rpartition("/")
    return f"{dirname}{sep}{sha256}.{base}"


def _check_name(name: str) -> None:
    if not name or name.startswith("/") or ".." in name.split("/") or len(name) > 64:
        raise RepoError(f"bad target name {name!r} (relative, no '..', at most 64 chars)")


class ImageRepo(RepoBase):
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
        delta_from: Sequence[str] = (),
    ) -> ImageTarget:
        """Add (or replace) an image; with ``deflate_wbits`` also publish its raw-deflate form
        as target ``NAME.deflate`` (window 2**wbits, 9..15) and record it in ``compressed``;
        with ``delta_from`` (versions of earlier releases) a patch from each (``delta.py``),
        listed in ``deltas``."""
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
        new: dict[str, tuple[TargetFile, bytes]] = {}
        if deflate_wbits is not None:
            if not 9 <= deflate_wbits <= 15:
                raise RepoError("deflate wbits must be 9..15")
            co = zlib.compressobj(9, zlib.DEFLATED, -deflate_wbits)
            zdata = co.compress(blob) + co.flush()
            zname = f"{name}.deflate"
            _check_name(zname)
            ztf = TargetFile.from_data(zname, zdata, ["sha256"])
            ztf.unrecognized_fields["custom"] = {"compressed_form_of": name, "wbits": deflate_wbits}
            new[zname] = (ztf, zdata)
            custom["compressed"] = {
                "target": zname,
                "length": len(zdata),
                "sha256": ztf.hashes["sha256"],
                "wbits": deflate_wbits,
            }
        tf = TargetFile.from_data(name, blob, ["sha256"])
        if delta_from:
            bases = delta.choose_bases(
                delta_from, self._bases(), hardware_ids=hw, release_counter=release_counter
            )
            custom["deltas"] = []
            for base in bases:
                made, entry = delta.patch_target(
                    name, blob, version=version, new_sha256=tf.hashes["sha256"],
                    hardware_ids=hw, base=base,
                )  # fmt: skip
                for ptf, content in made:  # the patch and its deflated form
                    _check_name(ptf.path)
                    new[ptf.path] = (ptf, content)
                custom["deltas"].append(entry)
        tf.unrecognized_fields["custom"] = custom
        new[name] = (tf, blob)
        with self.edit_targets() as targets:
            self._drop_derived(targets.targets, name)  # a replaced image's old patches go too
            for target, (info, content) in new.items():
                targets.targets[target] = info
                self._store(target, content)
        self._targets_changed()
        return ImageTarget.from_target_file(tf)

    def remove_image(self, name: str) -> None:
        with self.edit_targets() as targets:
            targets.targets.pop(name, None)
            self._drop_derived(targets.targets, name)
        self._targets_changed()

    @staticmethod
    def _drop_derived(listed: dict[str, TargetFile], name: str) -> None:
        """Forget the deflate form and the patches (with theirs) of ``name``."""
        for t in delta.derived(listed, name):
            del listed[t]

    def _bases(self) -> list[delta.Base]:
        """Every listed image with its stored bytes (checked against the signed sha256)."""
        out = []
        for img in self.images():
            data = (self.path / "targets" / img.name).read_bytes()
            if sha256_hex(data) != img.sha256:
                raise RepoError(f"{img.name}: stored bytes differ from the signed sha256")
            out.append(delta.Base(img.name, data, img.version, img.sha256,
                                  img.release_counter, img.hardware_ids))  # fmt: skip
        return out

    def _store(self, name: str, data: bytes) -> None:
        write_atomic(self.path / "targets" / name, data)

    def image(self, name: str) -> ImageTarget:
        """The listed image ``name`` (``KeyError`` if absent)."""
        return ImageTarget.from_target_file(self.targets().targets[name])

    def deltas(self, name: str) -> list[delta.DeltaEntry]:
        """The patches listed for image ``name`` (its ``deltas`` custom field)."""
        listed = self.targets().targets
        return [e for e in listed[name].custom.get("deltas", []) if e["target"] in listed]

    def images(self) -> list[ImageTarget]:
        return [
            ImageTarget.from_target_file(tf)
            for tf in self.targets().targets.values()
            if "compressed_form_of" not in tf.custom and "delta_of" not in tf.custom
        ]

    def _publish_targets(self, out: Path) -> None:
        for name, tf in self.targets().targets.items():
            copy_if_changed(
                self.path / "targets" / name, out / _hashed_name(name, tf.hashes["sha256"])
            )

    def publish_into_server(self, server_root: Path | str) -> Path:
        """Publish under ``SERVER_ROOT/image`` (the layout ``otalink server`` serves)."""
        return self.publish(Path(server_root) / "image")


class DirectorRepo(RepoBase):
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

    def assign(self, ecu_id: str, hw_id: str, image: ImageTarget, *, issued: int | None = None,
               expires: int | None = None, delta_base: str | None = None) -> bytes:  # fmt: skip
        """Assign ``image`` to ``ecu_id`` (replacing its previous assignment); returns the signed
        instruction bytes. The hardware id must be one the image is built for. ``delta_base``
        (sha256 hex of the base image; ``delta.resolve_base`` finds it from a version): the
        instruction is format 2 and allows the ECU to apply a patch from exactly that base."""
        if hw_id not in image.hardware_ids:
            raise RepoError(f"image {image.name} is not built for hardware {hw_id!r}")
        if len(ecu_id.encode()) > 32 or "/" in ecu_id or not ecu_id:
            raise RepoError("ecu id: 1..32 bytes, no '/'")
        return self.assign_unchecked(ecu_id, hw_id, image, issued=issued, expires=expires,
                                     delta_base=delta_base)  # fmt: skip

    def assign_unchecked(
        self,
        ecu_id: str,
        hw_id: str,
        image: ImageTarget,
        *,
        issued: int | None = None,
        expires: int | None = None,
        delta_base: str | None = None,
    ) -> bytes:
        """``assign`` without the hardware check (tests build hostile Directors with it)."""
        base = None if delta_base is None else delta.base_hash(delta_base)
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
            base_sha256=base,
        )
        data = encode_instruction(ins)
        sigs = [
            (kp.keyid, kp.sign(data))
            for kp in (KeyPair(k.seed) for k in self.online.get("instruction", []))
        ]
        if not sigs:
            raise RepoError("no instruction key")
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
        if base is not None:
            tf.unrecognized_fields["custom"]["delta_base"] = base.hex()
        with self.edit_targets() as targets:
            for old in [p for p in targets.targets if p.split("/", 1)[0] == ecu_id]:
                del targets.targets[old]
            targets.targets[path] = tf
        self._targets_changed()
        return data

    def unassign(self, ecu_id: str | None = None) -> None:
        """Drop the assignment of one ECU (or of all ECUs)."""
        with self.edit_targets() as targets:
            for path in list(targets.targets):
                if ecu_id is None or path.split("/", 1)[0] == ecu_id:
                    del targets.targets[path]
        self._targets_changed()

    def assignments(self) -> dict[str, dict[str, Any]]:
        """ecu_id -> custom fields of its current assignment."""
        return {str(tf.custom["ecu_id"]): dict(tf.custom) for tf in self.targets().targets.values()}

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
