"""Power-cut sweep (MCUboot-style): cut power at flash operations of a full update and check that
a known, intact image still boots and that a retried update completes.

The update = boot, begin, write, finish (read-back), activate, reboot, self-test, confirm,
driven through the Slots API inside real MicroPython processes (cutdriver.py); the emulator
loses power after operation N, with or without tearing operation N+1. ``make test`` cuts at
every operation touching slot state and at a dense sample of data writes (>= 300 points); the
slow variants (``make soak``) cut at every operation, also for deflate transfers and a 4-byte
write granularity.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.device_storage.conftest import MpRun
from tests.device_storage.sweep import (
    GEOM,
    GEOM_BIG,
    GEOM_W1K,
    GEOM_W4,
    OP_PROGRAM,
    Sweep,
    is_state_op,
    judge,
    make_sweep,
    run_cuts,
    trace,
)

BATCHES = 4
_cache: dict[tuple[str, int], tuple[Sweep, list[tuple[int, int]]]] = {}


def _setup(mp_run: MpRun, base: Path, name: str, geom: dict[str, Any], comp: int):
    key = (name, comp)
    if key not in _cache:
        v2_len = 150_000 if name == "big" else 41_000
        sw = make_sweep(mp_run, base / f"{name}-{comp}", geom, comp, v2_len)
        _cache[key] = (sw, trace(mp_run, sw))
    return _cache[key]


def _points(ops: list[tuple[int, int]], geom: dict[str, Any], data_every: int) -> list[int]:
    """Cut points: after op i for every op touching state or erasing; every n-th data program."""
    pts = []
    data_seen = 0
    for i, (kind, addr) in enumerate(ops):
        if kind != OP_PROGRAM or is_state_op(geom, addr):
            pts.append(i)
        else:
            if data_seen % data_every == 0:
                pts.append(i)
            data_seen += 1
    pts.append(len(ops))  # after the last op: no cut fires, the update completes
    return pts


def _sweep(mp_run: MpRun, tmp: Path, batch: int, name: str, geom: dict[str, Any], comp: int,
           data_every: int, tear: bool | None) -> int:  # fmt: skip
    sw, ops = _setup(mp_run, tmp, name, geom, comp)
    pts = _points(ops, geom, data_every)
    tears = [False, True] if tear is None else [tear]
    cuts = [(p, t) for p in pts for t in tears]
    mine = cuts[batch::BATCHES]
    lines = run_cuts(mp_run, sw, f"cuts-{batch}-{tear}", mine)
    for line in lines:
        judge(sw, line, len(ops))
    return len(mine)


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sweep")


def test_trace_covers_the_update(mp_run: MpRun, sweep_dir: Path) -> None:
    """The traced update touches state and data, erases and programs: the sweep has targets."""
    sw, ops = _setup(mp_run, sweep_dir, "w256", GEOM, 0)
    state = [op for op in ops if is_state_op(GEOM, op[1])]
    data = [op for op in ops if not is_state_op(GEOM, op[1])]
    assert len(state) >= 8 and len(data) >= len(sw.v2) // GEOM["write_size"]
    assert {k for k, _ in ops} == {1, 2}


@pytest.mark.parametrize("batch", range(BATCHES))
def test_powercut_sweep(mp_run: MpRun, sweep_dir: Path, batch: int) -> None:
    """Every flash operation of the update, with and without tearing (>= 300 points)."""
    n = _sweep(mp_run, sweep_dir, batch, "w256", GEOM, 0, data_every=1, tear=None)
    assert n * BATCHES >= 300


@pytest.mark.parametrize("batch", range(BATCHES))
@pytest.mark.parametrize(
    ("name", "geom", "comp"),
    [("w4", GEOM_W4, 0), ("w1k", GEOM_W1K, 0), ("w256", GEOM, 1), ("w256", GEOM, 2)],
)
def test_powercut_sample(mp_run: MpRun, sweep_dir: Path, batch: int, name: str,
                         geom: dict[str, Any], comp: int) -> None:  # fmt: skip
    """Other write sizes, deflate and deflate segments: state ops + erases + every 3rd data
    write."""
    _sweep(mp_run, sweep_dir, batch, name, geom, comp, data_every=3, tear=None)


@pytest.mark.slow
@pytest.mark.parametrize("batch", range(BATCHES))
@pytest.mark.parametrize("tear", [False, True])
@pytest.mark.parametrize(
    ("name", "geom", "comp"),
    [
        ("w256", GEOM, 0),
        ("w4", GEOM_W4, 0),
        ("w1k", GEOM_W1K, 0),
        ("w256", GEOM, 1),
        ("big", GEOM_BIG, 0),
        ("big", GEOM_BIG, 1),
        ("big", GEOM_BIG, 2),
    ],
)
def test_powercut_every_op(mp_run: MpRun, sweep_dir: Path, batch: int, tear: bool, name: str,
                           geom: dict[str, Any], comp: int) -> None:  # fmt: skip
    """Every flash operation, for each geometry and compression, with a larger image."""
    _sweep(mp_run, sweep_dir, batch, name, geom, comp, data_every=1, tear=tear)
