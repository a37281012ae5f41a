"""Storage memory behaviour under the real MicroPython Slots (helper: memjob.py).

- Every buffer a transfer needs that is bigger than a few hundred bytes exists once Slots() is
  constructed: transfers still complete after the heap has been fragmented into small holes
  (2 KiB: deflate's decoder state still fits; 512 bytes for uncompressed transfers, smaller than
  the input ring and the program unit: a BEGIN that allocated either, or a flash scratch, would
  fail). The operations slotops.py loads per call (BEGIN, END) load in such a heap too.
- The deflate window is exactly the geometry's ``deflate_wbits``: caps announce it, a stream
  made with that window inflates, one that reaches further back does not.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest
from otalink.protocol import codes as C

from tests.device_storage.conftest import HERE, MpRun, json_lines
from tests.device_storage.sweep import deflate_raw, image

MEMJOB = HERE / "memjob.py"
GEOM: dict[str, Any] = {
    "size": 262144,
    "erase_size": 4096,
    "write_size": 256,
    "state_sectors": 2,
    "slot_size": 122880,
    "slot_offsets": [8192, 131072],
    "max_data": 4096,
}


def _run(
    mp_run: MpRun, d: Path, transfers: list[tuple[bytes, bytes, int]], hole: int = 0,
    heap: str = "256k", reboot_at: int = -1, **geom: Any,
) -> list[dict[str, Any]]:  # fmt: skip
    specs = []
    for i, (img, wire, comp) in enumerate(transfers):
        p = d / f"wire{i}.bin"
        p.write_bytes(wire)
        sha = hashlib.sha256(img).hexdigest()
        specs.append({"wire": str(p), "sha": sha, "image_len": len(img), "comp": comp,
                      "reboot_at": reboot_at})  # fmt: skip
    job = d / "job.json"
    g = {**GEOM, **geom}
    job.write_text(json.dumps({"flash": str(d / "fl.bin"), "geom": g, "hole": hole,
                               "transfers": specs}))  # fmt: skip
    r = mp_run(MEMJOB, str(job), heap=heap)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json_lines(r.stdout)
    assert len(out) == len(transfers), r.stdout
    return out


def test_transfers_complete_in_a_fragmented_heap(mp_run: MpRun, tmp_path: Path) -> None:
    a = image(1, 90_000)
    b = image(2, 70_000)
    hole = 2048
    out = _run(
        mp_run, tmp_path,
        [(a, a, C.COMP_NONE), (b, deflate_raw(b, 10), C.COMP_DEFLATE), (a, deflate_raw(a, 10),
         C.COMP_DEFLATE), (b, b, C.COMP_NONE)],
        hole=hole,
    )  # fmt: skip
    assert [r["code"] for r in out] == [C.OK] * 4
    # every transfer ran on the input ring Slots() made before the heap was fragmented
    assert all(r["ring_kept"] for r in out)


def test_uncompressed_transfers_complete_in_512_byte_holes(mp_run: MpRun, tmp_path: Path) -> None:
    a = image(3, 90_000)
    b = image(4, 70_000)
    out = _run(mp_run, tmp_path, [(a, a, C.COMP_NONE), (b, b, C.COMP_NONE)], hole=512)
    assert [r["code"] for r in out] == [C.OK] * 2
    assert all(r["ring_kept"] for r in out)


@pytest.mark.parametrize(("hole", "block"), [(2048, 2100), (512, 1000)])
def test_fragmented_heap_is_really_fragmented(
    mp_run: MpRun, tmp_path: Path, hole: int, block: int
) -> None:
    """Control for the tests above: with holes this small, a block a little larger cannot be
    allocated (so the transfers there really ran without one: the 512-byte holes are smaller
    than the 1 KiB program unit and the 1.25 KiB input ring)."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        f"import sys\nsys.path.insert(0, {str(HERE)!r})\n"
        "from memjob import _fragment\n"
        f"keep = _fragment({hole})\n"
        f"try:\n    x = bytearray({block})\n    print('allocated')\n"
        "except MemoryError:\n    print('refused')\n"
    )
    r = mp_run(probe, heap="256k")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-1] == "refused"


@pytest.mark.parametrize("dev_wbits", [10, 11])
def test_deflate_window_is_exactly_the_geometry_wbits(
    mp_run: MpRun, tmp_path: Path, dev_wbits: int
) -> None:
    rnd = random.Random(5)
    blk = rnd.randbytes(1500)  # repeats at distance 1500: needs a 2 KiB window (wbits 11)
    far = (blk + rnd.randbytes(40)) * 30
    near = image(3, 40_000)
    out = _run(
        mp_run, tmp_path,
        [(near, deflate_raw(near, 10), C.COMP_DEFLATE), (far, deflate_raw(far, 11),
         C.COMP_DEFLATE)],
        deflate_wbits=dev_wbits,
    )  # fmt: skip
    assert all(r["caps_wbits"] == dev_wbits == r["wbits"] for r in out)
    assert out[0]["code"] == C.OK
    if dev_wbits >= 11:
        assert out[1]["code"] == C.OK
    else:
        # back-references beyond the 1 KiB window cannot be resolved: never a VERIFIED slot
        assert out[1]["code"] in (C.E_DECOMPRESS, C.E_HASH_MISMATCH), out[1]
