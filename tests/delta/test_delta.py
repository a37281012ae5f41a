"""device/delta.py against detools' own apply, on MicroPython (the real unix port, base image in the
NOR emulator) and on CPython: generated pairs fed in pieces of every size, a restore from every
checkpoint, malformed patches, and the heap at -X heapsize=64k.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from pathlib import Path
from typing import Any

import detools
import pytest
from detools.common import pack_size
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from otalink.device import delta
from otalink.device.errors import DeviceError

from tests.delta import mp_delta
from tests.delta.pairs import (
    E_PATCH,
    Case,
    binary_like,
    edit,
    first_diff,
    gen_cases,
    make_patch,
    read_results,
    ref_apply,
    run_mp,
    write_batch,
)

# Two MicroPython batches (one per xdist worker), the same pairs checked on CPython.
BATCHES = {0: (1301, 130), 1: (7919, 130)}


def _cases(batch: int) -> list[Case]:
    seed, count = BATCHES[batch]
    return gen_cases(seed, count)


def _check_results(cases: list[Case], results: list[tuple[int, int, bytes, int]]) -> None:
    assert [r[0] for r in results] == [c.cid for c in cases], "a case is missing"
    for c, (cid, code, got, unit) in zip(cases, results, strict=True):
        where = f"case {cid} ({c.kind}, {len(c.base)} -> {len(c.new)}, unit {unit}, mode {c.mode})"
        assert code == 0, f"{where}: code {code}"
        assert got == c.new, f"{where}: differs at {first_diff(got, c.new)}"


def _mp_apply(tmp_path: Path, cases: list[Case], native: bool = True, **kw: Any) -> list[Any]:
    batch = tmp_path / "batch.bin"
    out = tmp_path / "out.bin"
    write_batch(batch, cases, **kw)
    proc = run_mp("apply", str(batch), str(out), "native" if native else "bytecode")
    assert proc.returncode == 0 and proc.stdout.rstrip().endswith("DELTA-OK"), (
        proc.stdout[-3000:] + proc.stderr[-3000:]
    )
    return list(read_results(out))


# ---- (i) + (ii): agreement with detools, pieces of any size -------------------------------
@pytest.mark.parametrize("batch", sorted(BATCHES))
def test_micropython_equals_detools(tmp_path: Path, batch: int) -> None:
    cases = _cases(batch)
    _check_results(cases, _mp_apply(tmp_path, cases))


# `make soak`: many more pairs, both runtimes
@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 23, 37, 53])
def test_soak_micropython_equals_detools(tmp_path: Path, seed: int) -> None:
    cases = gen_cases(seed, 500, big_every=40)
    _check_results(cases, _mp_apply(tmp_path, cases))
    out = tmp_path / "py.bin"
    mp_delta.run_batch(str(tmp_path / "batch.bin"), str(out))
    _check_results(cases, list(read_results(out)))


def test_micropython_bytecode_fallback_equals_detools(tmp_path: Path) -> None:
    # the loops a port without a native emitter runs (the same file, native=False)
    cases = [c for c in gen_cases(4243, 40, big_every=1000) if c.mode != 1]
    _check_results(cases, _mp_apply(tmp_path, cases, native=False))


@pytest.mark.parametrize("batch", sorted(BATCHES))
def test_cpython_equals_detools(tmp_path: Path, batch: int) -> None:
    cases = _cases(batch)
    batch_file = tmp_path / "batch.bin"
    out = tmp_path / "out.bin"
    write_batch(batch_file, cases)
    mp_delta.run_batch(str(batch_file), str(out))
    _check_results(cases, list(read_results(out)))


def test_native_loops_are_used_under_micropython(tmp_path: Path) -> None:
    # the heap run reports which loops the Patcher got: the viper ones must compile on the port
    _, info = _heap_run(tmp_path, "64k", native=True, size=8000)
    assert info["native"] is True, info
    _, info = _heap_run(tmp_path, "64k", native=False, size=8000)
    assert info["native"] is False, info


_edits = st.lists(
    st.tuples(
        st.integers(0, 4), st.integers(0, 1 << 20), st.integers(1, 700), st.binary(max_size=64)
    ),
    max_size=6,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 1 << 30), size=st.integers(1, 6000), edits=_edits,
       unit=st.sampled_from([1, 7, 16, 256, 1024]), piece=st.integers(1, 5000))  # fmt: skip
def test_cpython_property(seed: int, size: int, edits: list[Any], unit: int, piece: int) -> None:
    rnd = random.Random(seed)
    base = binary_like(rnd, size)
    new = bytearray(base)
    for op, at, n, data in edits:
        i = at % (len(new) + 1)
        if op == 0:
            for j in range(i, min(len(new), i + n)):
                new[j] ^= 0x5A
        elif op == 1:
            new[i:i] = data or b"\x01"
        elif op == 2:
            del new[i : i + n]
        elif op == 3:
            blk = new[i : i + n]
            del new[i : i + n]
            k = (at // 7) % (len(new) + 1)
            new[k:k] = blk
        else:
            new += data
    new_b = bytes(new) or b"\x00"
    patch = make_patch(base, new_b)
    want = ref_apply(base, patch)
    assert want == new_b
    got = _apply_py(base, patch, len(new_b), unit, piece)
    assert got == want


def _apply_py(
    base: bytes, patch: bytes, to_len: int, unit: int, piece: int, win: int = 256
) -> bytes:
    reg = mp_delta.RamRegion((len(base) + 4095) // 4096 * 4096 or 4096)
    reg.load(base)
    out = bytearray(unit)
    res = bytearray()

    def put(k: int) -> None:
        assert 0 < k <= unit and len(res) + k <= to_len
        res.extend(out[:k])

    p = delta.Patcher(reg, len(base), to_len, out, put, win)
    for i in range(0, len(patch), piece):
        p.feed(patch, i, min(piece, len(patch) - i))
    assert p.finish() == to_len
    return bytes(res)


@pytest.mark.parametrize("win", [16, 256, 4096])
def test_window_sizes(win: int) -> None:
    rnd = random.Random(win)
    base = binary_like(rnd, 30_000)
    new = edit(rnd, base, "mixed")
    patch = make_patch(base, new)
    assert _apply_py(base, patch, len(new), 1024, 777, win) == new


# ---- (iii): checkpoint and restore ------------------------------------------------------------
def _ck_cases() -> list[Case]:
    rnd = random.Random(99)
    cases = []
    for cid, (n, kind) in enumerate(
        ((900, "mixed"), (1500, "insert"), (700, "shift"), (300, "random"))
    ):
        base = binary_like(rnd, n)
        new = edit(rnd, base, kind)
        patch = make_patch(base, new)
        cases.append(
            Case(cid, base, patch, ref_apply(base, patch), 1, rnd.randrange(1 << 30), kind)
        )
    return cases


def _check_ck(cases: list[Case], full: bytes, infos: list[dict[str, Any]]) -> None:
    p = 0
    seen = 0
    partial = 0
    for c, info in zip(cases, infos, strict=True):
        assert full[p : p + len(c.new)] == c.new, c.cid
        p += len(c.new)
        assert info["bad"] == [], info
        assert info["checkpoints"] > len(c.new) // 48, info
        seen |= info["states"]
        partial += info["partial"]
    assert p == len(full)
    # checkpoints were taken in the header, in every size field, inside diff and extra data,
    # and in the middle of a multi-byte size
    want = {delta._S_HEAD, delta._S_TO, delta._S_DF, delta._S_DSIZE, delta._S_DIFF,
            delta._S_ESIZE, delta._S_EXTRA, delta._S_ADJ}  # fmt: skip
    assert {s for s in range(16) if seen >> s & 1} >= want, bin(seen)
    assert partial > 0


def test_checkpoint_restore_everywhere_micropython(tmp_path: Path) -> None:
    cases = _ck_cases()
    batch = tmp_path / "ck.bin"
    out = tmp_path / "ck.out"
    write_batch(batch, cases)
    proc = run_mp("ck", str(batch), str(out))
    assert proc.returncode == 0 and "DELTA-OK" in proc.stdout, proc.stdout[-3000:] + proc.stderr
    infos = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    _check_ck(cases, out.read_bytes(), infos)


def test_checkpoint_restore_everywhere_cpython(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = _ck_cases()
    batch = tmp_path / "ck.bin"
    out = tmp_path / "ck.out"
    write_batch(batch, cases)
    mp_delta.run_ck(str(batch), str(out))
    infos = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    _check_ck(cases, out.read_bytes(), infos)


def _patcher(
    base: bytes = b"\x00" * 64, to_len: int = 16, unit: int = 8
) -> tuple[Any, list[bytes]]:
    reg = mp_delta.RamRegion(4096)
    reg.load(base)
    out = bytearray(unit)
    got: list[bytes] = []
    return delta.Patcher(
        reg, len(base), to_len, out, lambda k: got.append(bytes(out[:k])), 256
    ), got


def test_no_checkpoint_while_result_bytes_wait() -> None:
    p, got = _patcher()
    p.feed(b"\x00\x10\x00\x00\x10abc", 0, 8)  # an extra of 16 bytes: 3 wait in the unit
    with pytest.raises(ValueError):
        p.checkpoint()
    with pytest.raises(ValueError):
        p.save(bytearray(delta._CK_LEN), 0)
    p.feed(b"defgh", 0, 5)  # the unit is full: emitted, a checkpoint again
    assert got == [b"abcdefgh"]
    assert p.checkpoint() == (13, 8, 0, 8, delta._S_EXTRA)


@pytest.mark.parametrize(
    "ck",
    [
        (0, 0, 0, 0, 9),  # DEAD
        (0, 4, 0, 0, 3),  # output not at a unit boundary
        (0, 24, 0, 0, 3),  # beyond to_len
        (0, 0, 65, 0, 3),  # beyond the base
        (0, 0, 0, 0, delta._S_DIFF),  # a data field with nothing left
        (0, 0, 60, 8, delta._S_DIFF),  # a diff beyond the base
        (0, 8, 0, 9, delta._S_EXTRA),  # more extra than the result has left
        (0, 0, 0, 5, delta._S_DIFF | 1 << 4),  # a partial size in a data state
        (0, 0, 0, 5, delta._S_DSIZE | 4 << 4),  # a partial size of 4 bytes
    ],
)
def test_restore_refuses_impossible_checkpoints(ck: tuple[int, ...]) -> None:
    p, _ = _patcher()
    with pytest.raises(ValueError):
        p.restore(ck)


# ---- (iv): malformed patches ---------------------------------------------------------------------
def _hand(*fields: int | bytes, head: int = 0) -> bytes:
    out = bytearray([head])
    for f in fields:
        out += f if isinstance(f, bytes) else pack_size(f)
    return bytes(out)


BASE = bytes(range(256)) * 2  # 512 bytes


def _crafted() -> list[tuple[str, bytes, int, int]]:
    """(name, patch, to_len, offset of the byte that must be refused) over BASE."""
    ok = _hand(16, 0, 16, bytes(16), 0, 0)  # diff 16 zero bytes: BASE[:16]
    assert ref_apply(BASE, ok) == BASE[:16]
    return [
        ("in-place type", _hand(16, 0, 16, bytes(16), 0, 0, head=0x10), 16, 0),
        ("hdiffpatch type", _hand(16, 0, head=0x20), 16, 0),
        ("lzma compression", make_patch(BASE, BASE[:16], compression="lzma"), 16, 0),
        ("crle compression", make_patch(BASE, BASE[:16], compression="crle"), 16, 0),
        ("heatshrink compression", make_patch(BASE, BASE[:16], compression="heatshrink"), 16, 0),
        ("zstd compression", make_patch(BASE, BASE[:16], compression="zstd"), 16, 0),
        ("to_size not the instruction's", _hand(15, 0, 15, bytes(15), 0, 0), 16, 1),
        ("data format", _hand(16, 3, 0, b"abc"), 16, 2),
        ("size of 5 bytes", _hand(16, 0) + b"\x80\x80\x80\x80\x00", 16, 6),
        ("negative diff size", _hand(16, 0, -1), 16, 3),
        ("negative extra size", _hand(16, 0, 0, -1), 16, 4),
        ("diff beyond the base", _hand(16, 0, 0, 0, 500, 16, bytes(16)), 16, 7),
        ("diff longer than the result", _hand(16, 0, 17, bytes(17)), 16, 3),
        ("extra longer than the result", _hand(16, 0, 0, 17, bytes(17)), 16, 4),
        ("adjustment below 0", _hand(16, 0, 8, bytes(8), 0, -9), 16, 13),
        ("adjustment beyond the base", _hand(16, 0, 0, 0, 513), 16, 6),
        ("byte after the end", ok + b"\x00", 16, len(ok)),
        ("end missing", ok[:-1], 16, len(ok) - 1),
        ("empty", b"", 16, 0),
    ]


@pytest.mark.parametrize("name,patch,to_len,at", _crafted(), ids=[c[0] for c in _crafted()])
def test_crafted_patch_refused_with_e_patch(name: str, patch: bytes, to_len: int, at: int) -> None:
    for piece in (1, 3, len(patch) or 1):
        p, got = _patcher(BASE, to_len)
        with pytest.raises(DeviceError) as e:
            for i in range(0, len(patch), piece):
                p.feed(patch, i, min(piece, len(patch) - i))
            p.finish()
        assert e.value.code == E_PATCH == delta._E_PATCH
        assert e.value.detail == at, name
        assert sum(map(len, got)) <= to_len
        with pytest.raises(DeviceError):  # the applier stays dead
            p.feed(b"\x00", 0, 1)
        with pytest.raises(DeviceError):
            p.finish()


def test_zero_length_result() -> None:
    p, got = _patcher(BASE, 0)
    p.feed(b"\x00\x00", 0, 2)
    assert p.finish() == 0 and got == []


def test_feed_range_checked() -> None:
    p, _ = _patcher()
    for start, n in ((-1, 1), (0, 5), (3, 2)):
        with pytest.raises(ValueError):
            p.feed(b"\x00\x10\x00\x00", start, n)


def _mutations(rnd: random.Random, patch: bytes) -> list[bytes]:
    out = [patch[:i] for i in range(len(patch))]  # every truncation
    out.append(patch + b"\x00")
    out.append(patch + patch)
    for _ in range(60):
        m = bytearray(patch)
        for _ in range(rnd.randrange(1, 4)):
            i = rnd.randrange(len(m))
            r = rnd.randrange(3)
            if r == 0:
                m[i] ^= 1 << rnd.randrange(8)
            elif r == 1:
                m[i] = rnd.choice((0x00, 0x7F, 0x80, 0xBF, 0xC0, 0xFF))
            else:
                del m[i]
        out.append(bytes(m))
    for _ in range(20):
        out.append(patch[:2] + rnd.randbytes(rnd.randrange(1, 80)))
    return out


def _bad_cases() -> tuple[list[Case], dict[int, int], dict[int, Any]]:
    """Malformed variants of small real patches, with what detools' apply makes of each."""
    rnd = random.Random(5)
    cases = []
    to_len = {}
    oracle: dict[int, Any] = {}
    cid = 0
    for kind in ("mixed", "insert", "random"):
        base = binary_like(rnd, 400)
        new = edit(rnd, base, kind)
        good = make_patch(base, new)
        for m in _mutations(rnd, good):
            try:
                oracle[cid] = ref_apply(base, m)
            except Exception:  # detools refused it (its Error, ValueError, IndexError ...)
                oracle[cid] = None
            cases.append(Case(cid, base, m, new, cid % 5, rnd.randrange(1 << 30), kind))
            to_len[cid] = len(new)
            cid += 1
    for name, patch, tl, _at in _crafted():
        cases.append(Case(cid, BASE, patch, b"", cid % 5, cid, name))
        to_len[cid] = tl
        oracle[cid] = "refuse"
        cid += 1
    return cases, to_len, oracle


def _check_bad(
    cases: list[Case], to_len: dict[int, int], oracle: dict[int, Any], results: list[Any]
) -> None:
    refused = 0
    for c, (cid, code, got, _unit) in zip(cases, results, strict=True):
        assert code in (0, E_PATCH), f"case {cid} ({c.kind}): code {code}"
        assert len(got) <= to_len[cid]
        want = oracle[cid]
        if code == 0:
            # accepted: then detools accepts it too and makes the same result
            assert isinstance(want, bytes) and got == want, f"case {cid} ({c.kind})"
        else:
            refused += 1
        if (
            want is None
            or want == "refuse"
            or (isinstance(want, bytes) and len(want) != to_len[cid])
        ):
            assert code == E_PATCH, f"case {cid} ({c.kind}): accepted what detools refuses"
    assert refused > len(cases) // 2


def test_malformed_patches_micropython(tmp_path: Path) -> None:
    cases, to_len, oracle = _bad_cases()
    _check_bad(cases, to_len, oracle, _mp_apply(tmp_path, cases, to_len=to_len))


def test_malformed_patches_cpython(tmp_path: Path) -> None:
    cases, to_len, oracle = _bad_cases()
    batch = tmp_path / "bad.bin"
    out = tmp_path / "bad.out"
    write_batch(batch, cases, to_len=to_len)
    mp_delta.run_batch(str(batch), str(out))
    _check_bad(cases, to_len, oracle, list(read_results(out)))


def test_every_truncation_refused() -> None:
    rnd = random.Random(8)
    base = binary_like(rnd, 2000)
    new = edit(rnd, base, "mixed")
    patch = make_patch(base, new)
    for n in range(len(patch)):
        p, got = _patcher(base, len(new), 64)
        p.feed(patch, 0, n)
        with pytest.raises(DeviceError) as e:
            p.finish()
        assert e.value.code == E_PATCH and e.value.detail == n
        assert sum(map(len, got)) <= len(new)


# ---- (v): heap --------------------------------------------------------------------------------
def _heap_run(
    tmp_path: Path, heap: str, native: bool, size: int = 60_000, variant: str = ""
) -> tuple[Any, dict[str, Any]]:
    rnd = random.Random(size)
    base = binary_like(rnd, size)
    new = edit(rnd, edit(rnd, base, "relink"), "mixed")
    patch = make_patch(base, new)
    (tmp_path / "base.bin").write_bytes(base)
    (tmp_path / "patch.bin").write_bytes(patch)
    sha = hashlib.sha256(new).hexdigest()
    proc = run_mp(
        "heap", str(tmp_path / "base.bin"), str(tmp_path / "patch.bin"), str(len(new)), sha,
        "1024", "2038", variant or ("native" if native else "bytecode"), heap=heap,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    return proc, info


def test_heap_64k_zero_allocation_per_piece(tmp_path: Path) -> None:
    # A 60 KB result from DATA-sized pieces with the 1 KiB program unit at -X heapsize=64k: the
    # result's sha256 matches, and after two warm-up pieces nothing allocates (heap_lock).
    _, info = _heap_run(tmp_path, "64k", native=True)
    print("delta heap (64k, unit 1024, pieces 2038):", info)
    assert info["alloc_error"] is None, info
    assert info["ok"] is True, info
    assert info["pieces"] > 3


def test_heap_lock_catches_an_allocating_put(tmp_path: Path) -> None:
    # the guard can fail: the same run with a put() that allocates is caught
    _, info = _heap_run(tmp_path, "64k", native=True, size=20_000, variant="allocating")
    assert info["alloc_error"] is not None and info["ok"] is False, info


def test_private_codes() -> None:
    # E_BASE_MISMATCH / E_PATCH are new wire codes; until protocol/codes.py has them, their
    # values are fixed here (tests/protocol/test_wire.py checks the copies once it does)
    from otalink.protocol import codes

    assert (delta._E_BASE_MISMATCH, delta._E_PATCH) == (44, 45)
    taken = {
        v
        for k, v in vars(codes).items()
        if k.startswith("E_") and k not in ("E_PATCH", "E_BASE_MISMATCH")
    }
    assert 44 not in taken and 45 not in taken


def test_detools_is_the_pinned_version() -> None:
    lock = (Path(__file__).resolve().parents[2] / "requirements.lock").read_text().split()
    assert f"detools=={detools.__version__}" in lock
    # the patch header byte the device accepts is what detools writes for sequential + none
    f = io.BytesIO()
    detools.create_patch(io.BytesIO(b"a"), io.BytesIO(b"b"), f, compression="none")
    assert f.getvalue()[0] == 0
