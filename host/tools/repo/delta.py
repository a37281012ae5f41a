"""Delta targets of the Image repository (issue 13, part 1): patches from earlier releases.

A patch is detools' *sequential* bsdiff patch with compression "none" (ADR 0006: the only form
the ECU's applier, ``device/delta.py``, accepts; the link's deflate segments compress it on the
way). It is an Image-repository target of its own (length and sha256 in the signed targets
metadata) named ``NAME.delta-BASESHA16``, with custom fields that bind it to the exact base
and result::

    {"delta_of": NAME, "format": "detools-sequential-bsdiff-none", "hardware_ids": [...],
     "base":   {"target": BASE_NAME, "version": "1.0.0", "sha256": ..., "length": ...},
     "result": {"version": "1.1.0", "sha256": ..., "length": ...}}

plus ``"compressed": {target, length, sha256, wbits}`` naming the patch's raw-deflate form
``NAME.delta-BASESHA16.deflate`` (a target of its own, ``compressed_form_of`` the patch): what a
vehicle downloads over cellular and inflates, bounded by the patch's signed length and checked
against its signed sha256. The image's own custom fields list its patches under ``deltas``
(what a vehicle chooses from). The base must be an earlier release (a lower release counter)
listed for every hardware id of the new image; anything else is refused with ``repo.error``.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypedDict

import detools  # type: ignore[import-untyped]
from otalink.host.tools.repo.base import RepoError
from tuf.api._payload import TargetFile  # implicit re-export in tuf.api.metadata

PATCH_FORMAT = "detools-sequential-bsdiff-none"
PATCH_WBITS = 15  # the downloaded form's raw-deflate window (the vehicle inflates it)
MAX_BASES = 8  # patches per image: each is computed and stored, a vehicle needs one


class DeltaSide(TypedDict):
    """One end of a patch as its custom fields name it."""

    version: str
    sha256: str
    length: int


class DeltaBase(DeltaSide):
    """The base end: also the image target it was made from."""

    target: str


class DeltaEntry(TypedDict):
    """A patch as the image's ``deltas`` list shows it."""

    target: str
    length: int
    sha256: str
    base_version: str
    base_sha256: str


@dataclass(frozen=True)
class Base:
    """An earlier release a patch starts from (name, bytes and what the repository lists)."""

    name: str
    data: bytes
    version: str
    sha256: str
    release_counter: int
    hardware_ids: tuple[str, ...]


def make_patch(base: bytes, new: bytes) -> bytes:
    """detools' sequential bsdiff patch from ``base`` to ``new``, uncompressed (ADR 0006)."""
    out = io.BytesIO()
    detools.create_patch(
        io.BytesIO(base),
        io.BytesIO(new),
        out,
        compression="none",
        patch_type="sequential",
        algorithm="bsdiff",
        use_mmap=False,
    )
    return out.getvalue()


def apply_patch(base: bytes, patch: bytes) -> bytes:
    """detools' own apply (tools and tests; the ECU has its own applier)."""
    out = io.BytesIO()
    detools.apply_patch(io.BytesIO(base), io.BytesIO(patch), out)
    return out.getvalue()


def patch_name(name: str, base_sha256: str) -> str:
    """The target name of the patch of ``name`` from the base with that sha256."""
    return f"{name}.delta-{base_sha256[:16]}"


def choose_bases(
    versions: Sequence[str],
    candidates: Iterable[Base],
    *,
    hardware_ids: Sequence[str],
    release_counter: int,
) -> list[Base]:
    """The base of each version in ``versions``: listed for every hardware id of the new image,
    an earlier release; exactly one image per version (else ``RepoError``)."""
    if len(set(versions)) != len(versions) or len(versions) > MAX_BASES:
        raise RepoError(f"--delta-from: distinct versions, at most {MAX_BASES}")
    pool = list(candidates)
    chosen: list[Base] = []
    for v in versions:
        same = [b for b in pool if b.version == v]
        fits = [b for b in same if set(hardware_ids) <= set(b.hardware_ids)]
        if not fits:
            why = "for every hardware id " + ", ".join(hardware_ids) if same else "listed"
            raise RepoError(f"no image of version {v!r} {why}: cannot make a patch from it")
        if len(fits) > 1:
            names = ", ".join(sorted(b.name for b in fits))
            raise RepoError(f"version {v!r} is listed more than once ({names}): ambiguous base")
        base = fits[0]
        if base.release_counter >= release_counter:
            raise RepoError(
                f"version {v!r} is release {base.release_counter}, not earlier than "
                f"{release_counter}: a patch goes from an earlier release"
            )
        chosen.append(base)
    return chosen


def derived(listed: Mapping[str, TargetFile], name: str) -> list[str]:
    """The targets made from image ``name``: its deflate form, its patches and theirs."""
    patches = [t for t, tf in listed.items() if tf.custom.get("delta_of") == name]
    forms = [f"{t}.deflate" for t in [name, *patches]]
    return [t for t in [*patches, *forms] if t in listed]


def patch_target(
    name: str, new: bytes, *, version: str, new_sha256: str, hardware_ids: Sequence[str], base: Base
) -> tuple[list[tuple[TargetFile, bytes]], DeltaEntry]:
    """The patch of ``name`` (``new``) from ``base``: its target file (custom fields binding
    base and result) and bytes, its raw-deflate form (``NAME.deflate``, what a vehicle downloads:
    an uncompressed patch is mostly zeros; none when it does not shrink), and its entry in the
    image's ``deltas`` list."""
    patch = make_patch(base.data, new)
    pname = patch_name(name, base.sha256)
    tf = TargetFile.from_data(pname, patch, ["sha256"])
    co = zlib.compressobj(9, zlib.DEFLATED, -PATCH_WBITS)
    zdata = co.compress(patch) + co.flush()
    ztf = TargetFile.from_data(f"{pname}.deflate", zdata, ["sha256"])
    ztf.unrecognized_fields["custom"] = {"compressed_form_of": pname, "wbits": PATCH_WBITS}
    small = len(zdata) < len(patch)  # a patch of unrelated data does not deflate: no form
    based: DeltaBase = {
        "target": base.name,
        "version": base.version,
        "sha256": base.sha256,
        "length": len(base.data),
    }
    result: DeltaSide = {"version": version, "sha256": new_sha256, "length": len(new)}
    tf.unrecognized_fields["custom"] = {
        "delta_of": name,
        "format": PATCH_FORMAT,
        "hardware_ids": list(hardware_ids),
        "base": dict(based),
        "result": dict(result),
    }
    if small:
        tf.unrecognized_fields["custom"]["compressed"] = {
            "target": ztf.path, "length": len(zdata), "sha256": ztf.hashes["sha256"],
            "wbits": PATCH_WBITS,
        }  # fmt: skip
    entry: DeltaEntry = {
        "target": pname,
        "length": len(patch),
        "sha256": tf.hashes["sha256"],
        "base_version": base.version,
        "base_sha256": base.sha256,
    }
    return [(tf, patch), (ztf, zdata)] if small else [(tf, patch)], entry


def resolve_base(entries: Iterable[DeltaEntry], base: str) -> str:
    """The sha256 (hex) of the base of a listed patch named by its base version or sha256
    (``ImageRepo.deltas(name)``; ``RepoError`` if none starts there): what
    ``DirectorRepo.assign(delta_base=...)`` signs into the instruction (format 2)."""
    for e in entries:
        if base in (e["base_version"], e["base_sha256"]):
            return e["base_sha256"]
    raise RepoError(f"no listed patch starts from {base!r}")


def base_hash(delta_base: str) -> bytes:
    """A delta base as the instruction signs it: 32 bytes from a sha256 in hex."""
    try:
        raw = bytes.fromhex(delta_base)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise RepoError(f"delta base: a sha256 in hex, not {delta_base!r}")
    return raw
