"""Helpers to run MicroPython scripts of this area against the build/mpy staging tree."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_mp(micropython: str, mpy_tree: Path, script: Path, *args: str, timeout: float = 60) -> str:
    """Run ``script`` under MicroPython with build/mpy first on the path; return stdout."""
    env = dict(os.environ, MICROPYPATH=f"{mpy_tree}:{script.parent}")
    proc = subprocess.run(
        [micropython, "-X", "heapsize=256k", str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout
