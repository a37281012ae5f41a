"""Base/new image pairs, detools patches and the batch files of tests/delta/mp_delta.py."""

from __future__ import annotations

import io
import os
import random
import struct
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import detools

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
HARNESS = HERE / "mp_delta.py"
HDR = "<4sIIIIII"
RES = "<IiII"
E_PATCH = 45


def make_patch(base: bytes, new: bytes, algorithm: str = "bsdiff", **kw: object) -> bytes:
    """detools' sequential patch (compression none unless ``compression`` says otherwise)."""
    kw.setdefault("compression", "none")
    f = io.BytesIO()
    detools.create_patch(
        io.BytesIO(base), io.BytesIO(new), f, algorithm=algorithm, use_mmap=False, **kw
    )
    return f.getvalue()


def ref_apply(base: bytes, patch: bytes) -> bytes:
    """detools' own apply (the oracle); raises whatever detools raises."""
    out = io.BytesIO()
    detools.apply_patch(io.BytesIO(base), io.BytesIO(patch), out)
    return out.getvalue()


# ---- generated pairs ------------------------------------------------------------------------
def binary_like(rnd: random.Random, n: int) -> bytes:
    """Data shaped like firmware: code-ish random runs, zero/0xFF padding, tables, strings."""
    out = bytearray()
    while len(out) < n:
        kind = rnd.randrange(5)
        k = rnd.randrange(8, 600)
        if kind == 0:
            out += rnd.randbytes(k)
        elif kind == 1:
            out += bytes([rnd.choice((0, 0xFF))]) * k
        elif kind == 2:  # a table of little-endian words
            base = rnd.randrange(1 << 20)
            for i in range(k // 4):
                out += struct.pack("<I", base + 4 * i * rnd.randrange(1, 4))
        elif kind == 3:
            words = (b"otalink ", b"slot ", b"delta ", b"error\x00")
            out += b"".join(rnd.choice(words) for _ in range(k // 6))
        else:  # repeat an earlier piece (code reuse)
            if out:
                a = rnd.randrange(len(out))
                out += out[a : a + k]
    return bytes(out[:n])


def edit(rnd: random.Random, base: bytes, kind: str) -> bytes:
    """A new version of ``base``: small edits, insertions, deletions, shifts, appends, ..."""
    b = bytearray(base)
    if kind == "same":
        return bytes(b)
    if kind == "random":
        return rnd.randbytes(max(1, len(b) + rnd.randrange(-len(b) // 2, len(b) // 2 + 2)))
    if kind == "append":
        return bytes(b) + binary_like(rnd, rnd.randrange(1, 3000))
    if kind == "truncate":
        return bytes(b[: rnd.randrange(1, len(b) + 1)])
    if kind == "relink":  # what a relink does: many addresses moved by the same amount
        for _ in range(rnd.randrange(5, 60)):
            i = rnd.randrange(max(1, len(b) - 4))
            v = struct.unpack_from("<I", b, i)[0] if len(b) >= 4 else 0
            if len(b) >= i + 4:
                struct.pack_into("<I", b, i, (v + 0x40) & 0xFFFFFFFF)
        return bytes(b)
    ops = {"edits": 0, "insert": 1, "delete": 2, "shift": 3}.get(kind, -1)
    for _ in range(rnd.randrange(1, 8)):
        op = ops if ops >= 0 else rnd.randrange(4)
        i = rnd.randrange(len(b) + 1)
        if op == 0:
            for j in range(i, min(len(b), i + rnd.randrange(1, 24))):
                b[j] = (b[j] + rnd.randrange(1, 256)) & 0xFF
        elif op == 1:
            b[i:i] = binary_like(rnd, rnd.randrange(1, 400))
        elif op == 2 and len(b) > 1:
            del b[i : i + rnd.randrange(1, min(400, len(b)))]
        elif op == 3:  # move a block elsewhere
            k = rnd.randrange(1, 2000)
            blk = b[i : i + k]
            del b[i : i + k]
            j = rnd.randrange(len(b) + 1)
            b[j:j] = blk
    return bytes(b) or b"\x00"


KINDS = ("edits", "insert", "delete", "shift", "append", "truncate", "relink", "random", "same",
         "mixed")  # fmt: skip


@dataclass
class Case:
    cid: int
    base: bytes
    patch: bytes
    new: bytes  # detools' own apply of the patch (checked equal to the intended new image)
    mode: int  # how the harness feeds it (mp_delta.pieces)
    seed: int
    kind: str = ""


def gen_cases(seed: int, count: int, big_every: int = 25) -> list[Case]:
    """``count`` pairs of every kind; every ``big_every``-th one is 60-160 KB."""
    rnd = random.Random(seed)
    cases = []
    for cid in range(count):
        kind = KINDS[cid % len(KINDS)]
        if cid % big_every == big_every - 1:
            n = rnd.randrange(60_000, 160_000)
        elif cid % 7 == 0:
            n = rnd.randrange(1, 64)  # tiny
        else:
            n = rnd.randrange(64, 20_000)
        base = binary_like(rnd, n)
        new = edit(rnd, base, kind)
        algo = "match-blocks" if cid % 11 == 5 else "bsdiff"
        patch = make_patch(base, new, algo)
        ref = ref_apply(base, patch)
        assert ref == new, (cid, kind)
        mode = (0, 2, 3, 4, 1)[cid % 5] if len(patch) < 30_000 or cid % 5 != 4 else 2
        cases.append(Case(cid, base, patch, ref, mode, rnd.randrange(1 << 30), kind))
    return cases


# ---- batch files ------------------------------------------------------------------------------
def write_batch(path: Path, cases: Iterable[Case], to_len: dict[int, int] | None = None) -> None:
    with open(path, "wb") as f:
        for c in cases:
            tl = (to_len or {}).get(c.cid, len(c.new))
            f.write(struct.pack(HDR, b"DLT1", c.cid, len(c.base), len(c.patch), tl, c.mode, c.seed))
            f.write(c.base)
            f.write(c.patch)


def read_results(path: Path) -> Iterator[tuple[int, int, bytes, int]]:
    """(id, code, result bytes, unit) per case of an apply run."""
    data = path.read_bytes()
    p = 0
    while p < len(data):
        cid, code, n, unit = struct.unpack_from(RES, data, p)
        p += struct.calcsize(RES)
        yield cid, code, data[p : p + n], unit
        p += n


def micropython() -> str:
    from tests.mpyrun import _ensure_tree, _micropython

    _ensure_tree()
    return _micropython()


def run_mp(*args: str, heap: str = "16m", timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The harness under the MicroPython unix port, build/mpy on its path."""
    env = dict(os.environ, MICROPYPATH=str(ROOT / "build" / "mpy"))
    return subprocess.run(
        [micropython(), "-X", f"heapsize={heap}", str(HARNESS), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )


def first_diff(a: bytes, b: bytes) -> int:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return min(len(a), len(b))
