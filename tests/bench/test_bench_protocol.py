"""The protocol bench's wire count runs on the transfer engine as it is (it once called an API
the engine no longer had, and only `make bench` noticed)."""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import pytest

from bench import bench_protocol

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_wire_count_moves_the_whole_image_within_the_overhead_target() -> None:
    w = bench_protocol.wire_bytes()
    assert w["data_frames"] == math.ceil(bench_protocol.IMAGE_LEN / bench_protocol.CHUNK)
    overhead = (w["host_to_device"] + w["device_to_host"]) / bench_protocol.IMAGE_LEN - 1
    assert 0 < overhead <= 0.015


# scripts that run under MicroPython, not CPython modules
MICROPYTHON_SCRIPTS = {"bench_device_mp", "component_alone", "delta_base"}
MODULES = sorted(p.stem for p in BENCH.glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("name", [m for m in MODULES if m not in MICROPYTHON_SCRIPTS])
def test_every_bench_module_imports(name: str) -> None:
    importlib.import_module(f"bench.{name}")


def test_the_micropython_scripts_exist() -> None:
    assert set(MODULES) >= MICROPYTHON_SCRIPTS
