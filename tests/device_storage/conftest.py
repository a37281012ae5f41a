"""Fixtures of the device-storage tests: a MicroPython runner on the mpy staging tree."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from otalink.host.sim.ecusim import micropython_exe, mpy_path

HERE = Path(__file__).resolve().parent

MpRun = Callable[..., subprocess.CompletedProcess[str]]


def make_runner() -> MpRun:
    """Run a MicroPython script (path) with build/mpy on MICROPYPATH (rebuilt when stale)."""
    from tests.mpyrun import _ensure_tree

    _ensure_tree()
    tree = mpy_path()
    if not (tree / "otalink" / "device" / "slots.mpy").is_file():
        raise RuntimeError("build/mpy is missing or stale: run `make mpy`")

    def run(
        script: Path, *args: str, heap: str = "4m", timeout: float = 240, env: Any = None
    ) -> subprocess.CompletedProcess[str]:
        e = dict(os.environ, MICROPYPATH=str(tree))
        e.update(env or {})
        return subprocess.run(
            [micropython_exe(), "-X", f"heapsize={heap}", str(script), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=e,
        )

    return run


@pytest.fixture(scope="session")
def mp_run() -> MpRun:
    return make_runner()


def json_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]
