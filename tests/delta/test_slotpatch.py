"""A patch transfer through Slots on MicroPython (tests/delta/mp_slotpatch.py, no line): the base
installed and confirmed as a full image, then the result written from a patch (raw and in deflate
segments) in DATA pieces of several sizes, with a power-off mid-patch and a resume from the
durable checkpoint, a wrong base, a corrupted byte."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

from otalink.host.gateway.ecu import segments
from otalink.protocol import codes

from tests.delta.pairs import ROOT, binary_like, make_patch, micropython, ref_apply

HARNESS = Path(__file__).resolve().parent / "mp_slotpatch.py"


def _pair() -> tuple[bytes, bytes]:
    rnd = random.Random(21)
    base = binary_like(rnd, 60_000)
    b = bytearray(base)
    for _ in range(20):
        b[rnd.randrange(len(b))] ^= 0x11
    new = bytes(b[:30_000]) + b"inserted " * 40 + bytes(b[30_000:]) + binary_like(rnd, 5000)
    return base, new


def _run(d: Path, wire: bytes, jobs: list[str]) -> list[list[int]]:
    (d / "wire.bin").write_bytes(wire)
    (d / "job.txt").write_text("\n".join(jobs) + "\n")
    proc = subprocess.run(
        [micropython(), "-X", "heapsize=2m", str(HARNESS), str(d)], capture_output=True,
        text=True, timeout=300, env=dict(os.environ, MICROPYPATH=str(ROOT / "build" / "mpy")),
    )  # fmt: skip
    assert proc.returncode == 0 and "SLOTPATCH-OK" in proc.stdout, proc.stdout + proc.stderr
    return [[int(x) for x in ln.split()[1:]] for ln in proc.stdout.splitlines() if ln[:4] == "RUN "]


def test_patch_into_the_inactive_slot(tmp_path: Path) -> None:
    base, new = _pair()
    patch = make_patch(base, new)
    assert ref_apply(base, patch) == new
    (tmp_path / "base.bin").write_bytes(base)
    (tmp_path / "new.bin").write_bytes(new)
    ok, verified = codes.OK, codes.SLOT_VERIFIED
    # comp piece stop corrupt base_ok  ->  code resume_from slot_state sha_ok peak
    raw = _run(tmp_path, patch, [
        "3 700 -1 -1 1", "3 1 -1 -1 1", "3 4096 -1 -1 1", "3 700 30000 -1 1", "3 333 45000 -1 1",
        "3 700 -1 -1 0", f"3 700 -1 {len(patch) // 2} 1", "3 700 -1 3 1",
    ])  # fmt: skip
    for r in raw[:3]:
        assert r[:4] == [ok, -1, verified, 1], r
    for r, stop in ((raw[3], 30000), (raw[4], 45000)):
        assert r[0] == ok and r[2] == verified and 0 < r[1] <= stop and stop - r[1] < 8192, r
    assert raw[5][0] == codes.E_BASE_MISMATCH and raw[5][2] == codes.SLOT_EMPTY
    for r in raw[6:]:
        assert r[0] in (codes.E_PATCH, codes.E_HASH_MISMATCH) and r[2] != verified, r
    wire = segments.encode(patch, 10, 4096)
    seg = _run(tmp_path, wire, [
        "4 700 -1 -1 1", "4 64 -1 -1 1", "4 700 2000 -1 1", "4 100 600 -1 1",
        f"4 700 -1 {len(wire) // 2} 1",
    ])  # fmt: skip
    for r in seg[:2]:
        assert r[:4] == [ok, -1, verified, 1], r
    for r in seg[2:4]:
        assert r[0] == ok and r[2] == verified and r[1] > 0, r
    assert seg[4][0] in (codes.E_PATCH, codes.E_HASH_MISMATCH, codes.E_DECOMPRESS)
    assert seg[4][2] != verified
