"""Delta-update figures of the device's patch applier (device/delta.py), MicroPython unix port.

    python -m bench.bench_delta             # prints the figures -> build/bench/delta_device.json
    python -m bench.bench_delta --sizes OLD NEW [OLD NEW ...]    # patch size per compression

For each pair the detools patch (sequential, bsdiff, compression none) is applied by the real
module at ``-X heapsize=64k`` with the 1 KiB program unit, fed from a file in DATA-sized pieces
(2038 bytes), the base image in slot A of the NOR emulator, the result programmed into slot B and
hashed (tests/delta/mp_delta.py ``heap``; the result's sha256 is checked):

* ``apply_us_per_kib``       per KiB of result: feeding the patch, reading the base, programming
  and hashing (what the agent's write path adds for a delta), native (viper) loops;
* ``apply_only_us_per_kib``  the applier alone (put() only counts the result);
* ``bytecode_us_per_kib``    the same with the bytecode loops of a port without a native emitter;
* ``apply_peak_heap_bytes``  the harness process's highest ``gc.mem_alloc()`` during the apply
  (no collection between pieces: nothing is allocated per piece, checked under heap_lock),
  with ``code_heap_bytes`` (importing delta.py: bytecode, names, the compiled loops) and
  ``state_heap_bytes`` (one Patcher: object and 256-byte base window);
* ``patch_bytes``, ``wire_bytes`` (the patch as deflate segments at wbits 10, the link's
  default), ``full_wire_bytes`` (the new image the same way), ``size_ratio``.

Through the line (the real release pairs of bench/delta_pairs.py, ``line_figures``): the base
installed and confirmed on a real agent (an unpaced line, not measured), then the new release
sent as the patch by the host's uploader (``EcuClient.install(Patch)``: compression 4, the patch
in 64 KiB deflate segments) through ``LineSim`` paced at 115200 baud (8N1, as bench_line):

* ``b115200.ratio``          result bytes / (seconds BEGIN->verified x 11520): the issue's figure
  (the device applies the patch into the inactive slot and checks the result's sha256 by reading
  the slot back before it answers END);
* ``b115200.seconds``, ``b115200.wire_bytes``; ``agent_peak_heap_bytes``: the agent's live heap
  peak in that run (its memory trace, at ``LINE_HEAP``).

The whole patch update by the real agent (``agent_patch_update``: an unpaced line, the agent's
memory trace, bench/memtrace.py): release 1.0.0 installed in full and confirmed, then 2.0.0 as a
patch in deflate segments (compression 4) through BEGIN, DATA, END (the result's sha256 verified),
ABORT, and the same patch raw (compression 3) to verified:

* ``peak_heap_bytes``        the agent's live heap peak (after a collection, inside requests)
  during the patch transfers, at ``AGENT_HEAP`` (the device tests' budget);
* ``patch_heap_limit_bytes`` the smallest ``-X heapsize`` of ``PATCH_LADDER`` at which both patch
  transfers verify (``patch_fail_<heap>``: the step and the agent's error below it).

Pairs: ``bundle`` the agent's own modules (build/mpy) as a bundle, against a next version made
by editing it (relinked addresses, a few changed, inserted, moved and deleted pieces);
``all_diff`` every third byte changed (one long diff); ``all_extra`` unrelated data (extra
only). Never writes docs/.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Any

import detools
from otalink.host.gateway.ecu import segments

from bench import delta_pairs
from tests.delta.pairs import binary_like, edit, make_patch, ref_apply, run_mp
from tests.device_storage.conftest import make_runner


def run_mp_script(script: Path, *args: str) -> Any:
    """A MicroPython script over build/mpy (the storage tests' runner)."""
    return make_runner()(script, *args, heap="2m", timeout=300)


ROOT = Path(__file__).resolve().parent.parent
LINE_BAUD = 115200
LINE_HEAP = "96k"  # a patch transfer's working set on the unix port (tests/gateway/ecu)
# an ECU running an application beside the agent (the example bms image): ecusim.APP_HEAP + what
# a patch adds
LINE_APP_HEAP = "144k"
OUT = ROOT / "build" / "bench" / "delta_device.json"
# the whole patch update (agent_patch_update): the device tests' heap (tests/device_session/
# _agent.py HEAP) and the ladder below it
AGENT_HEAP = "80k"
PATCH_LADDER = ("64k", "72k", "80k", "88k", "96k", "112k", "128k")
UNIT = 1024
PIECE = 2038


def agent_bundle() -> bytes:
    from otalink.host.sim.ecusim import build_bundle

    mods = {}
    tree = ROOT / "build" / "mpy" / "otalink"
    for p in sorted(tree.rglob("*.mpy")):
        mods[str(p.relative_to(tree)).replace("device/", "d/").replace("protocol/", "p/")] = (
            p.read_bytes()
        )
    return build_bundle(mods, "app", "app.selftest")


def pairs() -> dict[str, tuple[bytes, bytes]]:
    rnd = random.Random(13)
    base = agent_bundle()
    minor = edit(rnd, edit(rnd, base, "relink"), "mixed")
    diff = bytearray(base)
    for i in range(0, len(diff), 3):
        diff[i] = (diff[i] + 1) & 0xFF
    return {
        "bundle": (base, minor),
        "all_diff": (base, bytes(diff)),
        "all_extra": (base, rnd.randbytes(len(base))),
    }


def apply(
    tmp: Path, name: str, base: bytes, new: bytes, patch: bytes, variant: str
) -> dict[str, Any]:
    (tmp / f"{name}.base").write_bytes(base)
    (tmp / f"{name}.patch").write_bytes(patch)
    proc = run_mp(
        "heap", str(tmp / f"{name}.base"), str(tmp / f"{name}.patch"), str(len(new)),
        hashlib.sha256(new).hexdigest(), str(UNIT), str(PIECE), variant, heap="64k",
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"bench_delta: {name} {variant} failed:\n{proc.stdout}{proc.stderr}")
    info: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if not info["ok"]:
        raise SystemExit(f"bench_delta: {name} {variant}: {info}")
    return info


def best(
    tmp: Path, name: str, base: bytes, new: bytes, patch: bytes, variant: str, runs: int = 3
) -> dict[str, Any]:
    # the fastest of a few runs (the machine is shared; the heap figures are the same each time)
    return min((apply(tmp, name, base, new, patch, variant) for _ in range(runs)),
               key=lambda r: r["us_per_kib"])  # fmt: skip


def bench(real: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"unit": UNIT, "piece": PIECE, "heapsize": 65536, "pairs": {}}
    todo = {name: (base, new, "synthetic") for name, (base, new) in pairs().items()}
    if real:  # the real release pairs (bench/delta_pairs.py; fetched from PyPI once)
        todo.update({n: p for n, p in delta_pairs.pairs().items() if n != "minor"})
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for name, (base, new, what) in todo.items():
            patch = make_patch(base, new)
            assert ref_apply(base, patch) == new
            nat = best(tmp, name, base, new, patch, "native")
            only = best(tmp, name, base, new, patch, "native+noflash")
            byc = best(tmp, name, base, new, patch, "bytecode+noflash", runs=1)
            wire = len(segments.encode(patch, 10))
            full = len(segments.encode(new, 10))
            out["pairs"][name] = {
                "what": what,
                "base_bytes": len(base),
                "new_bytes": len(new),
                "patch_bytes": len(patch),
                "wire_bytes": wire,
                "full_wire_bytes": full,
                "size_ratio": round(full / wire, 1),
                "apply_us_per_kib": nat["us_per_kib"],
                "apply_only_us_per_kib": only["us_per_kib"],
                "bytecode_us_per_kib": byc["us_per_kib"],
                "native": nat["native"],
                "apply_peak_heap_bytes": nat["peak_heap_bytes"],
                "code_heap_bytes": nat["code_bytes"],
                "state_heap_bytes": nat["state_bytes"],
            }
    if real:
        out["pairs"]["minor"] = dict(out["pairs"][delta_pairs.MINOR])
    b = out["pairs"]["minor" if real else "bundle"]
    for k in ("apply_us_per_kib", "apply_only_us_per_kib", "bytecode_us_per_kib",
              "apply_peak_heap_bytes", "code_heap_bytes", "state_heap_bytes"):  # fmt: skip
        out[k] = b[k]
    return out


# ---- the whole patch update by the real agent, its live heap ----------------------------------
def _releases(n: int = 40_000) -> tuple[bytes, bytes]:
    """Two releases of one application (format 1 bundles): 2.0.0 changes a few bytes of a
    firmware-like blob, inserts a block and appends (tests/gateway/ecu/test_patch_install.py)."""
    from otalink.host.sim.ecusim import build_bundle

    rnd = random.Random(1)
    blob = bytearray(binary_like(rnd, n))
    out = []
    for version in ("1.0.0", "2.0.0"):
        app = f"VERSION = {version!r}\n\ndef selftest():\n    return True\n".encode()
        out.append(build_bundle({"app.py": app, "blob.py": bytes(blob)}, "app", "app.selftest"))
        for _ in range(30):
            blob[rnd.randrange(len(blob))] ^= 0x24
        blob[n // 3 : n // 3] = binary_like(rnd, 700)
        blob += binary_like(rnd, 3000)
    return out[0], out[1]


def agent_patch_update(tmp: Path, heap: str, why: list[str]) -> dict[str, Any] | None:
    """The whole patch update (module docstring) under ``-X heapsize=heap``: the agent's live peak
    during the patch transfers and where it was sampled; None when a step failed (``why`` gets
    it, with the agent's last error lines)."""
    import time

    from otalink.host.gateway.ecu.uploader import Patch
    from otalink.host.sim.line.rig import EcuRig
    from otalink.protocol import codes, messages

    from bench import memtrace

    v1, v2 = _releases()
    patch = Patch(make_patch(v1, v2), len(v2), hashlib.sha256(v2).digest())
    rig = EcuRig(tmp, baud=None, heapsize=heap, config_extra={"memtrace": True})

    def instr(image: bytes, version: str, rc: int, base: bytes | None) -> tuple[bytes, Any]:
        now = int(time.time())
        i = bytes(messages.encode_instruction(
            rig.ecu_id, rig.hw_id, version, rc, len(image), hashlib.sha256(image).digest(),
            now - 60, now + 86400, f"app-{version}", 0, base,
        ))  # fmt: skip
        return i, [(rig.director.keyid, rig.director.sign(i))]

    step = "start"
    mark = 0
    try:
        rig.start()
        c = rig.client(timeout=20)
        step = "full install"
        c.install(*instr(v1, "1.0.0", 2, None), v1)
        c.activate()
        c.reboot()
        if c.hello().boot_state != codes.BOOT_TRIAL:
            raise RuntimeError("1.0.0 not on trial")
        c.confirm()
        mark = len(rig.proc.output())  # the patch boot's trace from here (its start is before)
        i, sigs = instr(v2, "2.0.0", 3, hashlib.sha256(v1).digest())
        for comp, compress in ((codes.COMP_PATCH_DEFLATE_SEG, True), (codes.COMP_PATCH, False)):
            step = f"patch (compression {comp})"
            r = c.install(i, sigs, patch, compress=compress)
            if r.compression != comp:
                raise RuntimeError(f"sent with compression {r.compression}")
            c.abort()
    except Exception as e:  # (EcuRejected E_INTERNAL, a link timeout, a dead agent)
        out = rig.proc.output()
        lines = [ln.strip() for ln in out.splitlines() if "MemoryError" in ln]
        why.append(f"{step}: {type(e).__name__}: {str(e)[:100]}"
                   + (f" (agent: {lines[-1]})" if lines else ""))  # fmt: skip
        return None
    finally:
        out = rig.proc.output()
        rig.stop()
    # the samples of the boot that ran the patch: from its start line to the end
    boot = out.rfind("otalink-mem start=", 0, mark)
    t = memtrace.parse(out[boot:] if boot >= 0 else out[mark:])
    return {"peak_heap_bytes": t.peak, "peak_heap_where": t.where}


def agent_patch_figures() -> dict[str, Any]:
    """``peak_heap_bytes`` at AGENT_HEAP and ``patch_heap_limit_bytes`` (module docstring)."""
    out: dict[str, Any] = {}
    why: list[str] = []
    with tempfile.TemporaryDirectory() as d:
        for heap in PATCH_LADDER:
            r = agent_patch_update(Path(d) / f"patch-{heap}", heap, why)
            if r is None:
                out[f"patch_fail_{heap}"] = why[-1]
                continue
            out["patch_heap_limit_bytes"] = int(heap[:-1]) * 1024
            at = heap
            if int(heap[:-1]) < int(AGENT_HEAP[:-1]):  # the figure at the agent's budget
                r2 = agent_patch_update(Path(d) / f"patch-{AGENT_HEAP}", AGENT_HEAP, why)
                if r2 is not None:
                    r, at = r2, AGENT_HEAP
            out["peak_heap_bytes"] = r["peak_heap_bytes"]
            out["peak_heap_where"] = r["peak_heap_where"]
            out["peak_heap_heapsize"] = at
            break
    return out


# ---- through the paced line: the agent applies the patch -----------------------------------------
def line_figure(tmp: Path, name: str, base: bytes, new: bytes) -> dict[str, Any]:
    """One pair through the line: BEGIN -> verified of the patch at LINE_BAUD (module docstring)."""
    import time

    from otalink.host.gateway.ecu.uploader import Patch
    from otalink.host.keys import KeyPair
    from otalink.host.sim.line.rig import EcuRig
    from otalink.protocol import codes, messages

    director = KeyPair.generate()
    wd = tmp / f"line-{name}"
    app = base.startswith(b"OTB1")  # a slot image: the loader runs its application
    heap = LINE_APP_HEAP if app else LINE_HEAP
    rig = EcuRig(wd, baud=LINE_BAUD, heapsize=heap, director=director,
                 config_extra={"memtrace": True})  # fmt: skip
    # the base: the release binary itself as the confirmed active slot (bench/delta_base.py)
    (wd / "base.img").write_bytes(base)
    job = {"flash": str(rig.flash_path), "geom": rig.flash.geom, "image": str(wd / "base.img")}
    (wd / "base.json").write_text(json.dumps(job))
    proc = run_mp_script(ROOT / "bench" / "delta_base.py", str(wd / "base.json"))
    if "BASE-OK" not in proc.stdout:
        raise SystemExit(f"bench_delta: {name}: base not installed:\n{proc.stdout}{proc.stderr}")
    patch = make_patch(base, new)
    now = int(time.time())
    instr = bytes(messages.encode_instruction(
        "ecu-1", "hw-unix-1", "2.0.0", 3, len(new), hashlib.sha256(new).digest(), now - 60,
        now + 3600, f"{name}-2.0.0", 1, hashlib.sha256(base).digest(),
    ))  # fmt: skip
    sigs = [(director.keyid, director.sign(instr))]
    with rig:
        c = rig.client()
        if c.hello().active.sha256 != hashlib.sha256(base).digest():
            raise SystemExit(f"bench_delta: {name}: the ECU does not run the base")
        c.hello()
        r = c.install(instr, sigs, Patch(patch, len(new), hashlib.sha256(new).digest()))
        st = c.status()
        if st.inactive.state != codes.SLOT_VERIFIED or st.inactive.sha256 != r.sha256:
            raise SystemExit(f"bench_delta: {name}: the patch did not verify")
        if rig.slot_bytes(st.active_slot ^ 1, len(new)) != new:
            raise SystemExit(f"bench_delta: {name}: the slot does not hold the result")
        peak = rig.peak_heap()
    return {
        "ratio": round(len(new) / (r.seconds * LINE_BAUD / 10), 2),
        "seconds": round(r.seconds, 3),
        "wire_bytes": r.wire_bytes,
        "compression": r.compression,
        "agent_peak_heap_bytes": peak,
    }


def line_figures() -> dict[str, dict[str, Any]]:
    """``line_figure`` for each real pair (``minor``: the headline pair's again)."""
    out: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as d:
        for name, (base, new, _what) in delta_pairs.pairs().items():
            if name != "minor":
                f = out[name] = line_figure(Path(d), name, base, new)
                print(f"{name:18} b115200 ratio {f['ratio']} ({f['seconds']} s, "
                      f"{f['wire_bytes']} wire bytes)")  # fmt: skip
    out["minor"] = dict(out[delta_pairs.MINOR])
    return out


# ---- patch sizes per compression option (the ADR's table) --------------------------------------
def _hs(window: int, lookahead: int) -> dict[str, Any]:
    return {"compression": "heatshrink", "heatshrink_window_sz2": window,
            "heatshrink_lookahead_sz2": lookahead}  # fmt: skip


OPTIONS: list[tuple[str, dict[str, Any]]] = [
    ("none", {}),
    ("crle", {}),
    ("heatshrink 8/4", _hs(8, 4)),
    ("heatshrink 10/5", _hs(10, 5)),
    ("lzma", {}),
    ("zstd", {}),
    ("lz4", {}),
]


def sizes(files: list[str]) -> list[dict[str, Any]]:
    rows = []
    for old_p, new_p in zip(files[::2], files[1::2], strict=True):
        old = Path(old_p).read_bytes()
        new = Path(new_p).read_bytes()
        row: dict[str, Any] = {
            "pair": f"{Path(old_p).name} -> {Path(new_p).name}",
            "base": len(old),
            "new": len(new),
            "full deflate-seg w10": len(segments.encode(new, 10)),
            "full zlib -9 w15": len(zlib.compress(new, 9)),
        }
        for label, kw in OPTIONS:
            kw = dict(kw)
            kw.setdefault("compression", label)
            p = make_patch(old, new, **kw)
            row[label] = len(p)
            if label in ("none", "crle"):
                row[label + " + deflate-seg w10"] = len(segments.encode(p, 10))
        p = make_patch(old, new, "match-blocks")
        row["match-blocks none + deflate-seg w10"] = len(segments.encode(p, 10))
        f = io.BytesIO()
        detools.create_patch(
            io.BytesIO(old), io.BytesIO(new), f, compression="none", patch_type="hdiffpatch",
            algorithm="hdiffpatch", use_mmap=False,
        )  # fmt: skip
        row["hdiffpatch none + deflate-seg w10"] = len(segments.encode(f.getvalue(), 10))
        rows.append(row)
    return rows


def merge_results(path: Path, out: dict[str, Any]) -> None:
    """The issue's figures as flat ``delta.*`` keys in results.json (beside the line figures).
    ``full_bytes`` / ``patch_bytes``: what the link sends (deflate segments, wbits 10) for the
    full image and for the patch; ``b115200.ratio`` (and ``.seconds``, ``.wire_bytes``): the
    patch through the paced line (``line_figures``), for the pairs measured there."""
    res: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    res = {k: v for k, v in res.items() if not k.startswith("delta.")}
    for name, r in out["pairs"].items():
        res[f"delta.{name}.what"] = r["what"]
        res[f"delta.{name}.full_bytes"] = r["full_wire_bytes"]
        res[f"delta.{name}.patch_bytes"] = r["wire_bytes"]
        res[f"delta.{name}.patch_raw_bytes"] = r["patch_bytes"]
        res[f"delta.{name}.size_ratio"] = r["size_ratio"]
        for k, v in r.get("line", {}).items():
            res[f"delta.{name}.b115200.{k}" if k != "agent_peak_heap_bytes" else
                f"delta.{name}.agent_peak_heap_bytes"] = v  # fmt: skip
    res["delta.apply_us_per_kib"] = out["apply_us_per_kib"]
    res["delta.apply_peak_heap_bytes"] = out["apply_peak_heap_bytes"]
    for k in ("peak_heap_bytes", "peak_heap_where", "patch_heap_limit_bytes"):
        if k in out:
            res[f"delta.{k}"] = out[k]
    path.write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
    print(f"delta.* -> {path}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", nargs="+", metavar="FILE", help="OLD NEW pairs: patch sizes")
    ap.add_argument("--no-fetch", action="store_true", help="synthetic pairs only (no PyPI)")
    ap.add_argument("--no-line", action="store_true", help="no patch through the paced line")
    ap.add_argument("--results", type=Path, help="also merge delta.* figures into this "
                    "results.json (make bench: build/bench/results.json)")  # fmt: skip
    a = ap.parse_args()
    if a.sizes:
        if len(a.sizes) % 2:
            ap.error("--sizes takes OLD NEW pairs")
        for row in sizes(a.sizes):
            print(json.dumps(row))
        return 0
    out = bench(real=not a.no_fetch)
    out.update(agent_patch_figures())
    if not a.no_fetch and not a.no_line:
        for name, fig in line_figures().items():
            out["pairs"][name]["line"] = fig
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    if a.results:
        merge_results(a.results, out)
    for name, r in out["pairs"].items():
        print(
            f"{name:9} result {r['new_bytes']} B, patch {r['patch_bytes']} B, wire "
            f"{r['wire_bytes']} B (full {r['full_wire_bytes']} B); us/KiB: "
            f"{r['apply_us_per_kib']} with flash, {r['apply_only_us_per_kib']} applier alone, "
            f"{r['bytecode_us_per_kib']} bytecode loops; apply peak heap "
            f"{r['apply_peak_heap_bytes']} B"
            + (f"; b115200 ratio {r['line']['ratio']}" if "line" in r else "")
        )
    print(f"code_heap_bytes {out['code_heap_bytes']}, state_heap_bytes "
          f"{out['state_heap_bytes']} -> {OUT}")  # fmt: skip
    for k in sorted(k for k in out if k.startswith(("peak_heap", "patch_"))):
        print(f"{k} {out[k]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
