"""pytest plugin: run ``tests/**/mp_test_*.py`` under the MicroPython unix port.

Each top-level ``def test_*`` in such a file becomes its own pytest item. Running an item starts
``.venv/bin/micropython`` with ``MICROPYPATH=build/mpy:<the test's folder>:tests/mp_common`` (the
helpers shared by every folder's MicroPython tests) and cwd at the repo
root, imports the file as a module and calls the function; a MicroPython exception fails the item
with MicroPython's own traceback. Collection only reads the file with a regex (no MicroPython).

Optional per-file headers (anywhere in the first 20 lines):
    # mpy-heapsize: 64k      -> micropython -X heapsize=64k
    # mpy-timeout: 120       -> seconds before the item fails (default 120)
A comment ``# mpy-mark: slow`` on the line right above a ``def test_*`` adds that pytest marker.
If a protocol/ or device/ source is newer than its .mpy, the staging tree is rebuilt first
(tools/build_mpy.py; atomic per file, safe under pytest-xdist).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
MPY_TREE = ROOT / "build" / "mpy"
MP_COMMON = ROOT / "tests" / "mp_common"  # helpers every mp_test_*.py can import
_TEST_DEF = re.compile(r"^(?:#\s*mpy-mark:\s*([\w, ]+)\n)?def (test_\w*)\s*\(", re.MULTILINE)
_HEAPSIZE = re.compile(r"^#\s*mpy-heapsize:\s*(\w+)\s*$", re.MULTILINE)
_TIMEOUT = re.compile(r"^#\s*mpy-timeout:\s*(\d+)\s*$", re.MULTILINE)
_OK_MARK = "MPYRUN-OK"
_tree_checked = False


def _micropython() -> str:
    exe = Path(sys.executable).parent / "micropython"
    if exe.exists():
        return str(exe)
    found = shutil.which("micropython")
    if not found:
        raise RuntimeError("micropython not found: run `make dev`")
    return found


def _ensure_tree() -> None:
    """Rebuild build/mpy when a source is newer than its compiled file (once per process)."""
    global _tree_checked
    if _tree_checked:
        return
    stale = False
    for folder in ("protocol", "device"):
        for src in (ROOT / folder).rglob("*.py"):
            dst = MPY_TREE / "otalink" / folder / src.relative_to(ROOT / folder).with_suffix(".mpy")
            if not dst.exists() or dst.stat().st_mtime_ns < src.stat().st_mtime_ns:
                stale = True
                break
        if stale:
            break
    if stale or not (MPY_TREE / "otalink" / "__init__.mpy").exists():
        proc = subprocess.run(
            [sys.executable, str(ROOT / "tools" / "build_mpy.py"), "--out", str(MPY_TREE)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError("build_mpy failed:\n" + proc.stdout + proc.stderr)
    _tree_checked = True


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "micropython: runs under the MicroPython unix port")


class MicroPythonTestFailure(Exception):
    """A MicroPython test function raised (or the process died)."""


def _is_mp_test(file_path: Path) -> bool:
    return file_path.suffix == ".py" and file_path.name.startswith("mp_test_")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    # Files named on the command line are offered to the python plugin too, which then asks
    # pytest_pycollect_makemodule (below); everything else is collected here.
    if _is_mp_test(file_path) and not parent.session.isinitpath(file_path):
        return MpyFile.from_parent(parent, path=file_path)
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> Any:
    if _is_mp_test(module_path):
        return MpyFile.from_parent(parent, path=module_path)
    return None


class MpyFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        text = self.path.read_text(encoding="utf-8")
        head = "\n".join(text.splitlines()[:20])
        heap = _HEAPSIZE.search(head)
        tmo = _TIMEOUT.search(head)
        seen = set()
        for marks, name in _TEST_DEF.findall(text):
            if name in seen:
                continue
            seen.add(name)
            item = MpyItem.from_parent(
                self,
                name=name,
                heapsize=heap.group(1) if heap else None,
                timeout=int(tmo.group(1)) if tmo else 120,
            )
            for mark in filter(None, (m.strip() for m in marks.split(","))):
                item.add_marker(mark)
            yield item


class MpyItem(pytest.Item):
    def __init__(self, *, heapsize: str | None, timeout: int, **kw: Any) -> None:
        super().__init__(**kw)
        self.heapsize = heapsize
        self.timeout = timeout
        self.add_marker("micropython")

    def runtest(self) -> None:
        _ensure_tree()
        module = self.path.stem
        script = f"import {module} as _m\n_m.{self.name}()\nprint({_OK_MARK!r})\n"
        cmd = [_micropython()]
        if self.heapsize:
            cmd += ["-X", "heapsize=" + self.heapsize]
        cmd += ["-c", script]
        env = dict(os.environ)
        env["MICROPYPATH"] = os.pathsep.join([str(MPY_TREE), str(self.path.parent), str(MP_COMMON)])
        env.setdefault("OTALINK_ROOT", str(ROOT))
        try:
            proc = subprocess.run(
                cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=self.timeout
            )
        except subprocess.TimeoutExpired as exc:
            out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else exc.stdout
            raise MicroPythonTestFailure(f"timed out after {self.timeout}s\n{out or ''}") from None
        lines = proc.stdout.rstrip("\n").splitlines()
        if proc.returncode != 0 or not lines or lines[-1] != _OK_MARK:
            raise MicroPythonTestFailure(
                f"micropython exit {proc.returncode}\n"
                f"--- stdout (MicroPython prints its traceback here) ---\n{proc.stdout}\n"
                f"--- stderr ---\n{proc.stderr}"
            )

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:
        if isinstance(excinfo.value, MicroPythonTestFailure):
            return f"{self.path.name}::{self.name} failed under MicroPython:\n{excinfo.value}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"micropython: {self.path.name}::{self.name}"
