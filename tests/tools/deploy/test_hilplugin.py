"""tests/hilplugin.py: hardware tests are skipped only when no --board is given."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _pytest(tmp_path: Path, *args: str) -> str:
    (tmp_path / "test_hw.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.hardware\n"
        "def test_needs_board(request):\n"
        "    assert request.config.getoption('--board') == 'rp2'\n"
        "    assert request.config.getoption('--port') == '/dev/ttyACM0'\n\n"
        "def test_plain():\n    pass\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.hilplugin",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "markers=hardware: needs a board",
            str(tmp_path / "test_hw.py"),
            *args,
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return proc.stdout


def test_skipped_without_board(tmp_path: Path) -> None:
    out = _pytest(tmp_path, "-rs")
    assert "1 passed, 1 skipped" in out and "no --board given" in out


def test_runs_with_board(tmp_path: Path) -> None:
    out = _pytest(tmp_path, "--board", "rp2", "--port", "/dev/ttyACM0", "-rs")
    assert "2 passed" in out and "skipped" not in out
