"""A patch's downloaded raw-deflate form is inflated within the signed length and checked
against the patch's signed sha256 before anything is kept (host/gateway/update/deltas.py)."""

from __future__ import annotations

import hashlib
import os
import zlib
from pathlib import Path

import pytest
from otalink.host.gateway.update.deltas import inflate_form
from otalink.host.gateway.update.errors import TargetIntegrityError


def _deflate(data: bytes) -> bytes:
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    return co.compress(data) + co.flush()


PATCH = bytes(200_000) + os.urandom(3000) + bytes(100_000)
SHA = hashlib.sha256(PATCH).hexdigest()


def test_the_form_inflates_to_the_signed_patch(tmp_path: Path) -> None:
    form = tmp_path / "p.deflate"
    form.write_bytes(_deflate(PATCH))
    out = inflate_form(form, tmp_path / "p", len(PATCH), SHA)
    assert out.read_bytes() == PATCH and not form.exists()


@pytest.mark.parametrize(
    "data",
    [
        _deflate(PATCH + b"x"),  # one byte past the signed length: never written past it
        _deflate(PATCH[:-1]),  # short
        _deflate(PATCH[:-1] + b"\x01"),  # other content, same length
        _deflate(PATCH)[:-5],  # truncated stream
        _deflate(PATCH) + b"junk",  # data after the stream
        b"\xff" * 64,  # not deflate
    ],
    ids=["long", "short", "other", "truncated", "trailing", "garbage"],
)
def test_anything_else_is_refused_and_nothing_kept(tmp_path: Path, data: bytes) -> None:
    form = tmp_path / "p.deflate"
    form.write_bytes(data)
    with pytest.raises(TargetIntegrityError) as ei:
        inflate_form(form, tmp_path / "p", len(PATCH), SHA)
    assert ei.value.code == "trust.integrity"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.deflate"]
