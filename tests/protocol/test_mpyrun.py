"""The MicroPython runner plugin itself: items per function, tracebacks, headers, markers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

SAMPLE = """\
# mpy-heapsize: 48k
import sys


def helper():
    raise ValueError("boom from micropython")


def test_passes():
    assert sys.implementation.name == "micropython"


def test_fails():
    helper()


# mpy-mark: slow
def test_slow_one():
    pass


def test_heap_is_small():
    bytearray(200 * 1024)
"""


def run_pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "mp_test_sample.py").write_text(SAMPLE)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.mpyrun", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), "-o", "addopts=", str(tmp_path / "mp_test_sample.py"), *args],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )  # fmt: skip


def test_items_tracebacks_headers_markers(tmp_path: Path) -> None:
    # One pytest process (its startup dominates): -v lists every item with its outcome.
    proc = run_pytest(tmp_path, "-v", "-m", "not slow")
    out = proc.stdout
    items = re.findall(r"^mp_test_sample\.py::(\w+) (PASSED|FAILED)", out, re.MULTILINE)
    assert items == [
        ("test_passes", "PASSED"), ("test_fails", "FAILED"), ("test_heap_is_small", "FAILED"),
    ], out  # fmt: skip
    assert "2 failed, 1 passed, 1 deselected" in out, out  # the mpy-mark: slow item
    assert "boom from micropython" in out and "in helper" in out
    assert "MemoryError" in out  # -X heapsize=48k applied: a 200 KiB bytearray cannot fit
