"""Fixtures: a real MicroPython ECU agent behind a LineSim (``EcuRig``) in tmp_path."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from otalink.host.sim.line.rig import EcuRig

# Behaviour tests: the agent gets room to spare (heap figures come from bench/bench_line.py).
HEAP = os.environ.get("OTALINK_TEST_HEAP", "80k")  # the unix board's budget (issue 11: 80k)

RigFactory = Callable[..., EcuRig]


@pytest.fixture
def rig_factory(tmp_path: Path, mpy_tree: Path) -> Iterator[RigFactory]:
    rigs: list[EcuRig] = []

    def make(name: str = "ecu", **kw: Any) -> EcuRig:
        kw.setdefault("heapsize", HEAP)
        kw.setdefault("baud", None)
        rig = EcuRig(tmp_path / f"{name}{len(rigs)}", **kw).start()
        rigs.append(rig)
        return rig

    yield make
    for r in rigs:
        r.stop()


@pytest.fixture
def rig(rig_factory: RigFactory) -> EcuRig:
    return rig_factory()
