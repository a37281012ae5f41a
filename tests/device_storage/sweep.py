"""Shared setup of the power-cut sweeps: geometry, images, base flash, cut-point selection."""

from __future__ import annotations

import hashlib
import json
import random
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otalink.host.gateway.ecu import segments

from tests.device_storage.conftest import HERE, MpRun, json_lines

DRIVER = HERE / "cutdriver.py"

# Small flash so each cut point is cheap: 2 state sectors, two 56 KiB slots.
GEOM: dict[str, Any] = {
    "size": 131072,
    "erase_size": 4096,
    "write_size": 256,
    "state_offset": 0,
    "state_sectors": 2,
    "slot_size": 57344,
    "slot_offsets": [8192, 65536],
    "trial_boots": 3,
    "max_data": 4096,
    "program_size": 256,  # one 256-byte page per program: the finest cut granularity
}
# 4-byte write granularity (records are then 224 bytes, 18 per sector), 1 KiB program unit.
GEOM_W4: dict[str, Any] = {**GEOM, "write_size": 4, "program_size": 1024}
# 1 KiB write granularity: 4 records per state sector, so the record ring wraps several times
# during one update (sector switches and their erases get cut too).
GEOM_W1K: dict[str, Any] = {**GEOM, "write_size": 1024, "program_size": 1024}
# The unix board's layout at full size (512 KiB slots), for the soak.
GEOM_BIG: dict[str, Any] = {
    **GEOM,
    "size": 1114112,
    "write_size": 4,
    "slot_size": 524288,
    "slot_offsets": [65536, 589824],
    "program_size": 1024,
}

OP_ERASE = 1
OP_PROGRAM = 2


def image(seed: int, n: int) -> bytes:
    """Pseudo-random but compressible-ish image content."""
    rnd = random.Random(seed)
    words = [rnd.randbytes(rnd.randint(3, 12)) for _ in range(64)]
    out = bytearray()
    while len(out) < n:
        out += rnd.choice(words) if rnd.random() < 0.7 else rnd.randbytes(8)
    return bytes(out[:n])


def deflate_raw(data: bytes, wbits: int = 10) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -wbits)
    return c.compress(data) + c.flush()


@dataclass
class Sweep:
    dir: Path
    geom: dict[str, Any]
    v1: bytes
    v2: bytes
    comp: int
    base: Path
    job: dict[str, Any]

    def write_job(self, name: str, **kw: Any) -> Path:
        p = self.dir / f"{name}.json"
        p.write_text(json.dumps({**self.job, **kw}))
        return p


def _job(
    d: Path, geom: dict[str, Any], img: bytes, version: str, rc: int, comp: int
) -> dict[str, Any]:
    if comp == segments.COMP_DEFLATE_SEG:
        wire = segments.encode(img, 10, 16384)  # resumable: checkpoints at segment ends
    else:
        wire = deflate_raw(img) if comp else img
    wp = d / f"wire-{version}.bin"
    wp.write_bytes(wire)
    return {
        "geom": geom,
        "wire": str(wp),
        "image_len": len(img),
        "sha": hashlib.sha256(img).hexdigest(),
        "instr": hashlib.sha256(f"instr {version}".encode()).hexdigest(),
        "comp": comp,
        "version": version,
        "rc": rc,
    }


def make_sweep(mp_run: MpRun, d: Path, geom: dict[str, Any], comp: int = 0,
               v2_len: int = 41000) -> Sweep:  # fmt: skip
    """Base flash = v1 installed and confirmed; the job updates it to v2."""
    d.mkdir(parents=True, exist_ok=True)
    v1 = image(1, 30000)
    v2 = image(2, v2_len)
    base = d / "base.bin"
    j1 = _job(d, geom, v1, "1.0", 1, comp)
    jp = d / "install.json"
    jp.write_text(json.dumps({**j1, "mode": "install", "flash": str(base)}))
    r = mp_run(DRIVER, str(jp))
    assert r.returncode == 0, r.stderr
    assert json_lines(r.stdout) == [{"code": 0}]
    job = {**_job(d, geom, v2, "2.0", 2, comp), "base": str(base), "flash": str(d / "flash.bin")}
    return Sweep(d, geom, v1, v2, comp, base, job)


def trace(mp_run: MpRun, sw: Sweep) -> list[tuple[int, int]]:
    r = mp_run(DRIVER, str(sw.write_job("trace", mode="trace")))
    assert r.returncode == 0, r.stderr
    (out,) = json_lines(r.stdout)
    assert out["code"] == 0
    assert out["ops"] == len(out["trace"])
    return [(k, a) for k, a in out["trace"]]


def is_state_op(geom: dict[str, Any], addr: int) -> bool:
    lo = geom["state_offset"]
    return lo <= addr < lo + geom["state_sectors"] * geom["erase_size"]


def run_cuts(
    mp_run: MpRun, sw: Sweep, name: str, cuts: list[tuple[int, bool]]
) -> list[dict[str, Any]]:
    r = mp_run(
        DRIVER, str(sw.write_job(name, mode="cut", cuts=cuts, flash=str(sw.dir / f"{name}.bin")))
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    lines = json_lines(r.stdout)
    assert len(lines) == len(cuts)
    return lines


def judge(sw: Sweep, line: dict[str, Any], total_ops: int) -> None:
    """After the cut: a known image runs intact; the retried update ends on v2 confirmed."""
    known = {hashlib.sha256(sw.v1).hexdigest(): "1.0", hashlib.sha256(sw.v2).hexdigest(): "2.0"}
    where = f"cut after {line['cut']} ops (tear={line['tear']})"
    assert line["fired"] == (line["cut"] < total_ops), where
    seen = line["seen"]
    assert seen["slot"] >= 0, where + ": nothing bootable"
    assert seen["content_sha"] == seen["recorded_sha"], where + ": torn image runs"
    assert known.get(seen["content_sha"]) == seen["version"], where + ": unknown content"
    assert seen["state"] in (4, 5), where  # TRIAL or CONFIRMED
    assert line["retry"] == 0, where + f": retry failed with {line['retry']}"
    final = line["final"]
    assert final["state"] == 5 and final["version"] == "2.0", where
    assert final["content_sha"] == hashlib.sha256(sw.v2).hexdigest(), where
