"""The Director/Image cross-check (Uptane): one Director target against the Image repository,
the ECU inventory and its signed install instruction, into a verified assignment."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

from otalink.host.gateway.update.errors import (
    FreezeError,
    InstructionError,
    MixAndMatchError,
    UnknownEcuError,
    WrongHardwareError,
)
from otalink.host.gateway.update.instruction import decode_instruction, verify_instruction
from otalink.host.gateway.update.repos import map_tuf_error
from otalink.host.gateway.update.types import (
    KIND_CODES,
    CompressedForm,
    EcuAssignment,
    EcuInfo,
    ImageInfo,
)
from tuf.api._payload import TargetFile  # implicit re-export in tuf.api.metadata
from tuf.ngclient.updater import Updater


def cross_check(
    path: str,
    dtf: TargetFile,
    image: Updater,
    inventory: Mapping[str, EcuInfo],
    now: float,
    instruction_keys: Sequence[str],
) -> tuple[EcuAssignment, ImageInfo]:
    """The verified assignment of Director target ``path`` and its image's metadata; raises
    ``MixAndMatchError``, ``WrongHardwareError``, ``InstructionError``... on any disagreement.
    ``instruction_keys`` (hex): the keys that must sign the instruction (none: not checked)."""
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
        raise MixAndMatchError(f"Director target {path}: malformed custom fields ({exc})") from exc
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
    if instruction_keys:
        try:
            verify_instruction(
                instruction, list(sigs), [bytes.fromhex(k) for k in instruction_keys]
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
        base_sha256=ins.base_sha256.hex() if ins.base_sha256 else None,
    )
    return a, info
