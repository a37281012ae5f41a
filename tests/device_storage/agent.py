"""Helpers: stage images into a flash file, run the real agent under the ECU runner."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from otalink.host.sim.ecusim import (
    EcuProcess,
    FlashFile,
    board_geometry,
    build_bundle,
    make_ecu_config,
)

from tests.device_storage.conftest import HERE, MpRun, json_lines

STAGE = HERE / "stage.py"
HEAP = "80k"  # the ECU runner's default (figures: bench; heap notes: device_session/_agent.py)


def app_bundle(version: str, body: str = "", selftest: str = "return True") -> bytes:
    """A bundle whose entry module prints a marker, then runs ``body`` at import."""
    src = (
        f'VERSION = "{version}"\n'
        f'print("APP", VERSION, "imported")\n'
        f"{body}\n"
        "def selftest():\n"
        f"    {selftest}\n"
    )
    helper = b"def double(x):\n    return 2 * x\n"
    return build_bundle({"app.py": src.encode(), "lib/util.py": helper}, "app", "app.selftest")


def stage(
    mp_run: MpRun, d: Path, geom: dict[str, Any], images: list[tuple[bytes, str, int, str]]
) -> None:
    """Install (bundle, version, release counter, until) in order, as finished updates."""
    specs = []
    for i, (data, version, rc, until) in enumerate(images):
        p = d / f"image{i}.bin"
        p.write_bytes(data)
        specs.append({"path": str(p), "version": version, "rc": rc, "until": until})
    job = d / "stage.json"
    job.write_text(json.dumps({"flash": str(d / "flash.bin"), "geom": geom, "images": specs}))
    r = mp_run(STAGE, str(job))
    assert r.returncode == 0, r.stdout + r.stderr
    assert json_lines(r.stdout) == [{"code": 0}]


@contextmanager
def ecu(d: Path, **extra: Any) -> Iterator[tuple[EcuProcess, FlashFile]]:
    """The real agent (device/main.py) on d/flash.bin and a fresh pty, run_ms short."""
    master, slave = os.openpty()
    try:
        cfg = make_ecu_config(
            "ecu-test", "hw-test", [bytes(range(32))], bytes(32), d / "flash.bin",
            os.ttyname(slave), run_ms=extra.pop("run_ms", 150), **extra,
        )  # fmt: skip
        with EcuProcess(cfg, workdir=d, heapsize=HEAP) as proc:
            yield proc, FlashFile(d / "flash.bin", board_geometry("unix"))
    finally:
        os.close(master)
        os.close(slave)
