"""Choosing a patch (issue 13, ADR 0006): which Image-repository target an ECU gets.

A patch is offered only when the ECU's signed install instruction binds a base (format 2) and
the Image repository lists a patch of the assigned image from exactly that base, for the ECU's
hardware id, making exactly the instruction's result; its length and sha256 come from the
signed Image targets metadata like any target's (``offer``, at check time). The vehicle then
takes it only when the ECU's signed report shows that base active and confirmed and the ECU
announces ``CAP_PATCH`` (``choose``). Anything else: the full image, and the reason.
Nothing here loosens a check: the instruction still names the result, which the ECU verifies.
"""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path
from typing import Any

from otalink.host.gateway.update.errors import TargetIntegrityError
from otalink.host.gateway.update.types import Delivery, EcuAssignment
from tuf.ngclient.updater import Updater

PATCH_FORMAT = "detools-sequential-bsdiff-none"  # the one form the ECU applies
FORM_WBITS = 15  # the raw-deflate window of a patch's downloaded form (the repository's)

NONE_LISTED = "delta.none_listed"  # no patch of this image from the bound base
MISMATCH = "delta.mismatch"  # a listed patch whose signed fields disagree: not used
BASE_NOT_ACTIVE = "delta.base_not_active"  # the ECU does not run the base, confirmed
NO_CAP = "delta.no_cap"  # the ECU applies no patches
NO_REPORT = "delta.no_report"  # no signed report of the ECU to decide on
REFUSED = "delta.refused:"  # + the ECU's error code: it refused the patch BEGIN


def full(a: EcuAssignment, reason: str) -> Delivery:
    """The full image of ``a``, and why not a patch."""
    return Delivery(a.target, a.length, a.sha256, reason=reason)


def offer(a: EcuAssignment, image: Updater) -> Delivery:
    """The patch of ``a``'s image from its bound base, verified against the signed Image
    metadata (``image``: refreshed); else the full image with the reason."""
    itf = image.get_targetinfo(a.target)
    entries = itf.custom.get("deltas", []) if itf is not None else []
    found = False
    for e in entries if isinstance(entries, list) else []:
        if not isinstance(e, dict) or e.get("base_sha256") != a.base_sha256:
            continue
        found = True
        d = _checked(a, image, e)
        if d is not None:
            return d
    return full(a, MISMATCH if found else NONE_LISTED)


def _checked(a: EcuAssignment, image: Updater, entry: dict[str, Any]) -> Delivery | None:
    """The listed patch ``entry`` if its own signed target binds ``a``'s base and result."""
    try:
        ptf = image.get_targetinfo(str(entry["target"]))
    except Exception:
        return None
    if ptf is None or "sha256" not in ptf.hashes:
        return None
    c: dict[str, Any] = dict(ptf.custom)
    base, result = c.get("base"), c.get("result")
    if not isinstance(base, dict) or not isinstance(result, dict):
        return None
    hw = c.get("hardware_ids")
    ok = (
        c.get("delta_of") == a.target
        and c.get("format") == PATCH_FORMAT
        and isinstance(hw, list)
        and a.hw_id in hw
        and base.get("sha256") == a.base_sha256
        and result.get("sha256") == a.sha256
        and result.get("length") == a.length
        and result.get("version") == a.version
        and ptf.length == entry.get("length")
        and ptf.hashes["sha256"] == entry.get("sha256")
    )
    if not ok:
        return None
    form = _form(image, ptf.path, c.get("compressed"))
    if form == _BAD:
        return None
    fetch, fetch_len, fetch_sha = form or ("", 0, "")
    return Delivery(
        ptf.path,
        ptf.length,
        str(ptf.hashes["sha256"]),
        base_version=str(base.get("version", "")),
        base_sha256=a.base_sha256,
        fetch_target=fetch,
        fetch_length=fetch_len,
        fetch_sha256=fetch_sha,
    )


_BAD = ("", -1, "")


def _form(image: Updater, patch: str, named: object) -> tuple[str, int, str] | None:
    """The patch's raw-deflate form its signed custom fields name, checked against the form's
    own signed target: (target, length, sha256) to download; None if none is named; ``_BAD``
    if the named one disagrees (then the patch is not offered at all)."""
    if named is None:
        return None
    if not isinstance(named, dict) or named.get("wbits") != FORM_WBITS:
        return _BAD
    try:
        ztf = image.get_targetinfo(str(named.get("target")))
    except Exception:
        return _BAD
    if (
        ztf is None
        or ztf.custom.get("compressed_form_of") != patch
        or ztf.length != named.get("length")
        or ztf.hashes.get("sha256") != named.get("sha256")
    ):
        return _BAD
    return (ztf.path, ztf.length, str(ztf.hashes["sha256"]))


def choose(
    d: Delivery, a: EcuAssignment, active_sha256: bytes | None, confirmed: bool, cap_patch: bool
) -> Delivery:
    """``d`` (an offered patch) if the ECU's signed report allows it, else the full image.

    ``active_sha256``/``confirmed``: the report's active slot (None: no report);
    ``cap_patch``: the report's caps announce ``CAP_PATCH``."""
    if not d.is_delta:
        return d
    if active_sha256 is None:
        return full(a, NO_REPORT)
    if active_sha256.hex() != d.base_sha256 or not confirmed:
        return full(a, BASE_NOT_ACTIVE)
    if not cap_patch:
        return full(a, NO_CAP)
    return d


def inflate_form(form: Path, dest: Path, length: int, sha256: str) -> Path:
    """Inflate a downloaded raw-deflate form into ``dest``: at most ``length`` bytes (the
    patch's signed length), which must hash to its signed ``sha256`` (else TargetIntegrityError,
    nothing kept). The form (TUF-verified already) is then deleted; ``dest`` is returned."""
    d = zlib.decompressobj(-FORM_WBITS)
    h = hashlib.sha256()
    n = 0
    tmp = dest.with_name(dest.name + ".inflating")
    try:
        with open(form, "rb") as src, open(tmp, "wb") as out:
            while block := src.read(1 << 16):
                while block:
                    piece = d.decompress(block, max(1, length + 1 - n))
                    n += len(piece)
                    if n > length:
                        break
                    h.update(piece)
                    out.write(piece)
                    block = d.unconsumed_tail
                if n > length:
                    break
            tail = src.read(1)
        if n != length or not d.eof or d.unused_data or tail or h.hexdigest() != sha256:
            raise TargetIntegrityError(
                f"{dest.name}: its deflated form does not inflate to the signed patch"
            )
        tmp.replace(dest)
    except zlib.error as exc:
        raise TargetIntegrityError(f"{dest.name}: its deflated form is corrupt ({exc})") from exc
    finally:
        tmp.unlink(missing_ok=True)
    form.unlink(missing_ok=True)
    return dest
