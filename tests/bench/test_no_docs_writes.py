"""`make bench` and `make test` never write tracked files under docs/ (issue 10, 4.5).

An audit hook refuses (and records) every open-for-writing under docs/ while the figure-producing
code runs: the line bench's report writer and the screenshot hand-off of the browser tests. The
explicit step that does write docs/, `make docs-figures`, is checked on a copy of the tree.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench import bench_line, docs_figures

ROOT = Path(__file__).resolve().parents[2]
DOCS = str(ROOT / "docs")
_guard: dict[str, Any] = {"on": False, "hits": []}


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if not _guard["on"] or event != "open":
        return
    path, mode, flags = args
    if not isinstance(path, str | bytes | os.PathLike):
        return
    p = os.path.abspath(os.fsdecode(path))
    writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
        isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
    )
    if writes and (p == DOCS or p.startswith(DOCS + os.sep)):
        _guard["hits"].append(p)
        raise PermissionError(f"test: no writes under docs/ ({p})")


sys.addaudithook(_hook)


@pytest.fixture
def no_docs_writes() -> Iterator[list[str]]:
    _guard["hits"] = []
    _guard["on"] = True
    try:
        yield _guard["hits"]
    finally:
        _guard["on"] = False


def test_the_guard_catches_a_write_under_docs(no_docs_writes: list[str]) -> None:
    with pytest.raises(PermissionError):
        (ROOT / "docs" / "never-written.md").write_text("x")
    assert no_docs_writes and not (ROOT / "docs" / "never-written.md").exists()


def _results() -> dict[str, Any]:
    res: dict[str, Any] = {}
    for img in ("random", "firmware"):
        for b, lat in bench_line.LINES:
            lk = bench_line.line_key(b, lat)
            for k, v in (("ratio", 0.98), ("whole_ratio", 0.9), ("seconds", 3.0),
                         ("whole_seconds", 4.0), ("reboot_seconds", 0.8),
                         ("begin_ack_seconds", 0.1)):  # fmt: skip
                res[f"ours.{img}.{lk}.{k}"] = v
            res[f"esptool.{img}.{lk}.ratio"] = 0.9
            res[f"esptool.{img}.{lk}.whole_ratio"] = 0.7
    res["ours.random.b921600_lat8.config_unix"] = "frame 2048 B"
    res["ours.random.b921600_lat8.ratio_unix"] = 0.97
    res["ours.random.b921600_lat8.config_stm32"] = "frame 2048 B"
    res["ours.random.b921600_lat8.error_stm32"] = "MemoryError"
    res["smp_console.random.b115200.ratio_buf1024"] = 0.62
    return res


def test_line_report_goes_to_build_not_docs(tmp_path: Path, no_docs_writes: list[str]) -> None:
    meta = {"run": "test", "firmware": "fw.deb", "firmware_bytes": 1,
            "firmware_bundle_bytes": 2, "headline_config": "unix defaults"}  # fmt: skip
    ram = [{"board": "stm32", "max_payload": 2048, "window": 4096, "rxbuf": 4352,
            "heap_budget": 65536, "agent_heap": 60926, "fits_budget": False,
            "peak_heap_unbounded_bytes": 57408, "peak_where_unbounded": "in drop auth",
            "needs_budget_bytes": 68944}]  # fmt: skip
    written = bench_line.write_report(_results(), meta, tmp_path / "out", ram)
    assert no_docs_writes == []
    assert {p.name for p in written} == {"benchmarks.md", "bench_line.png"}
    md = (tmp_path / "out" / "benchmarks.md").read_text()
    assert "](bench_line.png)" in md and "computed" in md and "does not fit" in md
    assert "| stm32 | 2048 / 4096 / 4352 | 65536 | 60926 | **no** | 57408 (in drop auth)" in md
    # make bench's default output folder is build/bench
    assert bench_line.BUILD == ROOT / "build" / "bench"


def test_browser_screenshots_are_set_aside_not_copied_to_docs(
    tmp_path: Path, no_docs_writes: list[str]
) -> None:
    from tests.sim.demo import conftest as ui

    shot = tmp_path / "main-available.png"
    shot.write_bytes(b"\x89PNG fake")
    ui.copy_to_docs(shot, "bench-test-shot")
    dest = ui.DOCS_SHOTS / "bench-test-shot.png"
    try:
        assert no_docs_writes == []
        assert dest.read_bytes() == shot.read_bytes()
        assert not (ROOT / "docs" / "img" / "bench-test-shot.png").exists()
    finally:
        dest.unlink(missing_ok=True)


def test_docs_figures_copies_build_outputs_into_docs(tmp_path: Path) -> None:
    (tmp_path / "build" / "bench").mkdir(parents=True)
    (tmp_path / "build" / "bench" / "benchmarks.md").write_text("# B\n![c](bench_line.png)\n")
    (tmp_path / "build" / "bench" / "bench_line.png").write_bytes(b"png1")
    (tmp_path / "test-artifacts" / "docs-img").mkdir(parents=True)
    (tmp_path / "test-artifacts" / "docs-img" / "available.png").write_bytes(b"png2")
    assert docs_figures.main(["--root", str(tmp_path)]) == 0
    assert (tmp_path / "docs" / "benchmarks.md").read_text() == "# B\n![c](img/bench_line.png)\n"
    assert (tmp_path / "docs" / "img" / "bench_line.png").read_bytes() == b"png1"
    assert (tmp_path / "docs" / "img" / "available.png").read_bytes() == b"png2"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert docs_figures.main(["--root", str(empty)]) == 1
