"""Power-cut sweep over a delta update (the harness of tests/device_storage: cutdriver.py in real
MicroPython processes, the NOR emulator losing power after operation N, with and without tearing
operation N+1).

v1 is installed and confirmed as a full image; the update sends v2 as a detools patch (raw,
compression 3, and in deflate segments, 4) that the device applies against v1 in the active slot.
After every cut: a known, intact image boots; the retried update (the same BEGIN) completes to v2
confirmed; and a retry after a cut past the first durable checkpoint resumes there, not from 0.
``make test`` cuts at every state operation and erase and every 3rd data program (>= 100 points
per compression); ``make soak`` (slow) at every operation, both ways.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest
from otalink.host.gateway.ecu import segments
from otalink.protocol import codes

from tests.delta.pairs import binary_like, edit, make_patch, ref_apply
from tests.device_storage.conftest import MpRun, json_lines, make_runner
from tests.device_storage.sweep import (
    DRIVER,
    GEOM,
    OP_PROGRAM,
    Sweep,
    is_state_op,
    judge,
    run_cuts,
    trace,
)

BATCHES = 2
_cache: dict[int, tuple[Sweep, list[tuple[int, int]]]] = {}


def _pair() -> tuple[bytes, bytes]:
    rnd = random.Random(13)
    v1 = binary_like(rnd, 36_000)
    v2 = edit(rnd, v1, "edits") + binary_like(rnd, 5000)
    return v1, v2


def _setup(mp_run: MpRun, base: Path, comp: int) -> tuple[Sweep, list[tuple[int, int]]]:
    if comp in _cache:
        return _cache[comp]
    d = base / f"patch-{comp}"
    d.mkdir(parents=True, exist_ok=True)
    v1, v2 = _pair()
    assert len(v2) <= GEOM["slot_size"]
    patch = make_patch(v1, v2)
    assert ref_apply(v1, patch) == v2
    (d / "v1.bin").write_bytes(v1)
    inst = {
        "geom": GEOM, "wire": str(d / "v1.bin"), "image_len": len(v1),
        "sha": hashlib.sha256(v1).hexdigest(), "instr": hashlib.sha256(b"v1").hexdigest(),
        "comp": 0, "version": "1.0", "rc": 1, "mode": "install", "flash": str(d / "base.bin"),
    }  # fmt: skip
    (d / "install.json").write_text(json.dumps(inst))
    r = mp_run(DRIVER, str(d / "install.json"))
    assert r.returncode == 0, r.stderr
    assert json_lines(r.stdout) == [{"code": 0}]
    # 4 KiB patch segments: several restarts inside the patch, so checkpoints land mid-segment
    wire = patch if comp == codes.COMP_PATCH else segments.encode(patch, 10, 4096)
    (d / "wire.bin").write_bytes(wire)
    job: dict[str, Any] = {
        "geom": GEOM, "wire": str(d / "wire.bin"), "image_len": len(v2),
        "sha": hashlib.sha256(v2).hexdigest(), "instr": hashlib.sha256(b"v2").hexdigest(),
        "comp": comp, "version": "2.0", "rc": 2, "base": str(d / "base.bin"),
        "flash": str(d / "flash.bin"), "pbase": hashlib.sha256(v1).hexdigest(),
    }  # fmt: skip
    sw = Sweep(d, GEOM, v1, v2, comp, d / "base.bin", job)
    _cache[comp] = (sw, trace(mp_run, sw))
    return _cache[comp]


def _points(ops: list[tuple[int, int]], data_every: int) -> list[int]:
    pts = []
    seen = 0
    for i, (kind, addr) in enumerate(ops):
        if kind != OP_PROGRAM or is_state_op(GEOM, addr):
            pts.append(i)
        else:
            if seen % data_every == 0:
                pts.append(i)
            seen += 1
    pts.append(len(ops))
    return pts


def _first_checkpoint(ops: list[tuple[int, int]]) -> int:
    # the op index of the first state-record program after the first data program (the first
    # erase-sector checkpoint of the result)
    data = next(i for i, (k, a) in enumerate(ops) if k == OP_PROGRAM and not is_state_op(GEOM, a))
    return next(
        i for i, (k, a) in enumerate(ops) if i > data and k == OP_PROGRAM and is_state_op(GEOM, a)
    )


def _sweep(mp_run: MpRun, tmp: Path, batch: int, comp: int, data_every: int,
           tears: list[bool]) -> int:  # fmt: skip
    sw, ops = _setup(mp_run, tmp, comp)
    cuts = [(p, t) for p in _points(ops, data_every) for t in tears]
    mine = cuts[batch::BATCHES]
    lines = run_cuts(mp_run, sw, f"cuts-{batch}-{data_every}-{len(tears)}", mine)
    first = _first_checkpoint(ops)
    data_end = max(
        i for i, (k, a) in enumerate(ops) if k == OP_PROGRAM and not is_state_op(GEOM, a)
    )
    resumed = 0
    for line in lines:
        judge(sw, line, len(ops))
        # a cut after the first checkpoint and before the result is complete: the retry's BEGIN
        # resumes from the durable checkpoint (an offset > 0), never from zero
        if first + 1 < line["cut"] < data_end - 8:
            assert line["resumed"] > 0, f"cut after {line['cut']} ops: resumed from 0"
            resumed += 1
    assert resumed > 0 or len(mine) < 10
    return len(mine)


@pytest.fixture(scope="module")
def mp_run() -> MpRun:
    return make_runner()


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("patchsweep")


@pytest.mark.parametrize("batch", range(BATCHES))
@pytest.mark.parametrize("comp", [codes.COMP_PATCH, codes.COMP_PATCH_DEFLATE_SEG])
def test_powercut_patch_sample(mp_run: MpRun, sweep_dir: Path, batch: int, comp: int) -> None:
    """State ops, erases and every 3rd result program, with and without tearing (>= 100)."""
    n = _sweep(mp_run, sweep_dir, batch, comp, data_every=3, tears=[False, True])
    assert n * BATCHES >= 100


@pytest.mark.slow
@pytest.mark.parametrize("batch", range(BATCHES))
@pytest.mark.parametrize("tear", [False, True])
@pytest.mark.parametrize("comp", [codes.COMP_PATCH, codes.COMP_PATCH_DEFLATE_SEG])
def test_powercut_patch_every_op(mp_run: MpRun, sweep_dir: Path, batch: int, tear: bool,
                                 comp: int) -> None:  # fmt: skip
    """Every flash operation of the delta update."""
    _sweep(mp_run, sweep_dir, batch, comp, data_every=1, tears=[tear])
