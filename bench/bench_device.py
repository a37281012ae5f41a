"""Device agent figures (``make bench-device``): prints them and writes build/bench/device.json.

* ``ed25519_verify_ms``  median strict verification on the MicroPython unix port (target <= 250)
  at the agent's real heap: ``-X heapsize=64k``, the agent's ``gc.threshold(1024)`` and the heap
  filled to the agent's live level around its ed25519 work (``ed25519_verify_live_bytes``, from
  its memory trace); ``ed25519_verify_ms_256k``: the earlier figure (256k, default GC);
  ``ed25519_verify_room_bytes``: the least free heap one verification still succeeds in (its
  transient big-int peak inside, which the memory trace does not sample);
* ``us_per_kib``         device processing per KiB of DATA: real Session + Slots + flash emulator
  fed from memory (no pty, no host); also for a deflate-compressed image;
* ``peak_heap_bytes``    highest live heap (after a collection, sampled after every message and
  inside requests: bench/memtrace.py) of a whole update run by the real agent over a pty: verify,
  receive (deflate), write, read back, activate, reboot, trial boot, confirm; ``peak_heap_where``
  names the sample (that run at TRACE_HEAP, with the agent's memory hook);
* ``heap_limit_bytes``   the smallest ``-X heapsize`` at which the shipped agent (no memory hook:
  config "memtrace" off) completes that whole update: the first step of a ladder from 32k that
  does, refined in 2 KiB steps above the step below it; ``fail_64k``, ``fail_70k``...: the step
  and the agent's error where the update stops under each smaller size tried (absent once 64k
  fits);
* ``mpy_bytes``          total size of the compiled device + protocol modules (build/mpy);
* ``code_heap_bytes``    live heap taken by the serving agent's loaded modules alone (the unix
  port loads .mpy code and qstrs into the GC heap), and ``peak_data_heap_bytes`` = peak minus
  that: the heap a board with frozen modules would need (approximate);
* ``codec_code_heap_bytes`` / ``crypto_code_heap_bytes``  the two module groups the session
  imports per HELLO / STATUS_REQ / BEGIN and drops again (they take turns, never both);
* ``qstr_count`` / ``qstr_pools`` / ``qstr_heap_bytes``  the agent's interned names at exit of
  the boot that interned the most (the first: HELLO, BEGIN, DATA, END, ACTIVATE, REBOOT;
  ``qstr_count_trial_boot``: the second's): the pools hold 20+40+80+160+320 = 620 names in 5
  pools; name 621 allocates a 6th pool of 640 entries (~7.7 KB), so the count is a budget to
  keep under 620.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

from otalink.host.keys import KeyPair
from otalink.host.sim.ecusim.config import make_ecu_config, write_ecu_config
from otalink.protocol import codes, messages
from otalink.protocol.frame import frame
from otalink.protocol.transfer import TxWindow

from bench import memtrace
from tests.device_session._agent import Ecu, app_bundle

ROOT = Path(__file__).resolve().parent.parent
MPY = ROOT / "build" / "mpy"
OUT = ROOT / "build" / "bench" / "device.json"
MP_SCRIPT = Path(__file__).resolve().parent / "bench_device_mp.py"
HEAP_LADDER = ["32k", "40k", "48k", "56k", "64k", "72k", "80k", "96k", "112k", "128k", "160k",
               "192k", "256k"]  # fmt: skip
REFINE_KIB = 1  # the limit's resolution below the first ladder step that passes (1 KiB: the
# update alone sat between 64k and 66k)
RUNS = 3  # a heap size counts when this many whole updates in a row complete under it
TRACE_HEAP = "256k"  # the traced run (peak, where, names): room enough not to measure the GC


def micropython() -> str:
    return str(Path(sys.executable).parent / "micropython")


def run_mp(*args: str, heap: str = "4m") -> dict[str, Any]:
    env = dict(os.environ, MICROPYPATH=str(MPY))
    proc = subprocess.run(
        [micropython(), "-X", f"heapsize={heap}", str(MP_SCRIPT), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout + proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


AGENT_HEAP = "64k"  # the unix board's heap budget: what the agent runs under
AGENT_GC_THRESHOLD = 1024  # device/main.py: gc.threshold(_GC_EVERY)


def bench_verify(live: int = 0) -> dict[str, Any]:
    """ed25519 timed as the agent runs it: ``-X heapsize=64k``, the agent's gc.threshold, the heap
    filled to ``live`` bytes (the agent's live heap around its ed25519 work, from its memory
    trace); also the earlier figure (256k, default GC) and the free heap one verification needs.
    """
    r = run_mp("verify", "30", str(live), str(AGENT_GC_THRESHOLD), heap=AGENT_HEAP)
    roomy = run_mp("verify", "30", heap="256k")
    room = run_mp("verifyroom", heap=AGENT_HEAP)
    return {
        "ed25519_verify_ms": round(statistics.median(r["verify_ms"]), 2),
        "ed25519_verify_ms_cold": round(r["cold_verify_ms"], 2),
        "ed25519_sign_ms": round(r["sign_ms"], 2),
        "ed25519_keygen_ms": round(r["keygen_ms"], 2),
        "ed25519_verify_heap": AGENT_HEAP,
        "ed25519_verify_live_bytes": r["live_bytes"],
        "ed25519_verify_ms_256k": round(statistics.median(roomy["verify_ms"]), 2),
        "ed25519_verify_room_bytes": room["room_bytes"],
    }


def _deflate(data: bytes, wbits: int) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -wbits)
    return c.compress(data) + c.flush()


def bench_datapath(tmp: Path, kib: int, compress: bool) -> dict[str, Any]:
    director = KeyPair.generate()
    image = app_bundle("2.0.0", pad=kib * 1024)
    wire = _deflate(image, 10) if compress else image
    tmp.mkdir(parents=True, exist_ok=True)
    cfg = make_ecu_config(
        "bms-1", "unix-x64-r1", [director.public], KeyPair.generate().seed,
        tmp / "flash.bin", None,
    )  # fmt: skip
    cfg["line"] = {"path": "/dev/null"}
    cfg["max_payload"] = 4096  # the cost per KiB with the largest usual frames
    write_ecu_config(cfg, tmp / "ecu.json")
    instr = messages.encode_instruction(
        "bms-1", "unix-x64-r1", "2.0.0", 2, len(image),
        __import__("hashlib").sha256(image).digest(), 1_780_000_000, 1_790_000_000, "app", 0,
    )  # fmt: skip
    comp = codes.COMP_DEFLATE if compress else codes.COMP_NONE
    frames = [
        frame(
            messages.begin(
                instr,
                [director.signature_entry(instr)],
                len(image),
                __import__("hashlib").sha256(image).digest(),
                comp,
                len(wire),
            )
        )
    ]
    chunk = 4096 - 16
    for off in range(0, len(wire), chunk):
        frames.append(frame(messages.data(off, wire[off : off + chunk])))
    frames.append(frame(messages.end(len(wire))))
    (tmp / "frames.bin").write_bytes(b"".join(frames))
    r = run_mp("datapath", str(tmp / "ecu.json"), str(tmp / "frames.bin"))
    if r["errors_out"] or r["slot_states"].count(codes.SLOT_VERIFIED) != 1:
        raise RuntimeError(f"datapath run failed: {r}")
    r["wire_bytes"] = len(wire)
    r["image_bytes"] = len(image)
    r["us_per_kib"] = round(r["data_us"] / (len(wire) / 1024), 1)
    return r


_MEM = re.compile(rb"otalink-mem peak_live=(\d+) heap=(\d+)")
_QSTR = re.compile(
    rb"qstr pool: n_pool=(\d+), n_qstr=(\d+), n_str_data_bytes=\d+, n_total_bytes=(\d+)"
)


def _why(step: str, err: BaseException, ecu: Ecu) -> str:
    # the step that failed and the agent's last error lines (MemoryError ... allocating N bytes:
    # from its stderr, or from the host's assertion that quotes it), else the host's complaint
    # (an E_INTERNAL reply, a timeout)
    out = (ecu.stderr.decode(errors="replace") if ecu.stderr else "") + "\n" + str(err)
    lines = [ln.strip() for ln in out.splitlines() if "MemoryError" in ln or 'File "otalink' in ln]
    if lines:
        return f"{step}: agent: " + " <- ".join(lines[-2:])
    first = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
    return f"{step}: {first}"


def send_data(ecu: Ecu, wire: bytes, ack: list[Any], chunk: int, window: int) -> None:
    """DATA from BEGIN's ``ack`` until the device has ACKed every byte, with the host's one
    transfer engine (protocol/transfer.py TxWindow) over the harness's line; at most ``window``
    bytes in flight (2 frames: the figure's setting since it was first measured)."""
    tx = TxWindow(len(wire), chunk)
    now = time.monotonic()
    tx.start(now, ack[1], 0)
    tx.on_begin_ack(ack[1], min(ack[2], window), now)
    while not tx.done:
        while (r := tx.next_range(time.monotonic())) is not None:
            off, n = r
            ecu.send(messages.data(off, wire[off : off + n]))
        m = ecu.recv(10)  # AssertionError after 10 s of silence: the step failed
        if m[0] != codes.MSG_ACK:
            raise AssertionError(f"DATA -> {m}")
        tx.on_ack(m[1], min(m[2], window), time.monotonic())


def whole_update(
    tmp: Path,
    heap: str,
    max_payload: int | None = None,
    why: list[str] | None = None,
    traced: bool = True,
) -> dict[str, Any] | None:
    """One complete update under ``-X heapsize=heap``; None if the agent did not make it (then
    ``why`` gets the step and the agent's error). ``max_payload`` overrides the board's (smaller
    frames: smaller parser and slot buffers). ``traced``: with the agent's memory hook (config
    "memtrace": a module and its samples' collections beside the agent) and the figures it
    gives; without it (the shipped agent) an update that completes returns ``{}``."""
    why = why if why is not None else []
    tmp.mkdir(parents=True, exist_ok=True)
    extra = {"max_payload": max_payload, "window": 2 * max_payload} if max_payload else None
    chunk = (max_payload or 2048) - 16  # the unix board's max_payload, or the override
    ecu = Ecu(tmp, micropython(), MPY, heap=heap, extra=extra)
    env = {"OTALINK_MEMTRACE": "1"} if traced else {}
    peaks: list[int] = []
    trace = b""  # the agent's memory trace, both boots (bench/memtrace.py)
    step = "start"
    try:
        ecu.start(env)
        step = "hello"
        ecu.hello()
        image = app_bundle("2.0.0", pad=48 * 1024)
        wire = _deflate(image, 10)
        instr = ecu.instruction(image)
        step = "begin"
        ack = ecu.begin(image, instr=instr, compression=codes.COMP_DEFLATE, wire_len=len(wire))
        if ack[0] != codes.MSG_ACK:
            raise AssertionError(f"BEGIN -> {ack}")
        step = "data"
        send_data(ecu, wire, ack, chunk, window=2 * (chunk + 16))
        step = "end"
        r = ecu.request(messages.end(len(wire)), timeout=30)
        if r[2] != codes.OK:
            raise AssertionError(f"END -> {r}")
        step = "activate"
        if ecu.request(ecu.command(codes.MSG_ACTIVATE))[2] != codes.OK:
            raise AssertionError("ACTIVATE")
        step = "reboot"
        if ecu.request(ecu.command(codes.MSG_REBOOT))[2] != codes.OK or ecu.wait_exit() != 64:
            raise AssertionError("REBOOT")
        peaks += [int(m.group(1)) for m in _MEM.finditer(ecu.stderr)]
        qstr = [m.groups() for m in _QSTR.finditer(ecu.stderr)][-1:]
        trace += ecu.stderr
        step = "trial boot"
        ecu.start(env)
        ecu.hello()
        step = "confirm"
        if ecu.request(ecu.command(codes.MSG_CONFIRM))[2] != codes.OK:
            raise AssertionError("CONFIRM")
        step = "status"
        body, _, _ = ecu.status()
        if body[messages.R_SLOTS][body[messages.R_ACTIVE_SLOT]][1] != "2.0.0":
            raise AssertionError("not on 2.0.0")
        ecu.send(ecu.command(codes.MSG_REBOOT))
        ecu.wait_exit()
        peaks += [int(m.group(1)) for m in _MEM.finditer(ecu.stderr)]
        heap_total = [int(m.group(2)) for m in _MEM.finditer(ecu.stderr)]
        qstr += [m.groups() for m in _QSTR.finditer(ecu.stderr)][-1:]
        trace += ecu.stderr
    except (AssertionError, subprocess.TimeoutExpired, OSError) as e:
        ecu.kill()
        why.append(_why(step, e, ecu))
        return None
    finally:
        ecu.close()
    if not traced:
        return {}
    if len(peaks) < 2:
        return None
    out: dict[str, Any] = {
        "peak_heap_bytes": max(peaks),
        "heap_reported": heap_total[-1] if heap_total else 0,
        "peak_where": memtrace.parse(trace).where,
    }
    crypto = [v for label, v in memtrace.samples(trace) if "auth" in label or "ed25519" in label]
    if crypto:  # the live heap around the agent's ed25519 work (HELLO's signing, BEGIN's check)
        out["crypto_live_bytes"] = max(crypto)
    if qstr:  # the agent's qstr pools at exit (they live in the heap and are never freed): the
        # boot that interned the most (the first: it loads the transfer's and the commands'
        # modules), and the trial boot's count
        top = max(qstr, key=lambda q: int(q[1]))
        out["qstr_pools"] = int(top[0])
        out["qstr_count"] = int(top[1])
        out["qstr_heap_bytes"] = int(top[2])
        out["qstr_count_trial_boot"] = int(qstr[-1][1])
    return out


def heap_limit(tmp: Path, max_payload: int | None = None) -> tuple[str | None, dict[str, str]]:
    """The smallest ``-X heapsize`` at which the shipped agent (no memory hook) completes a
    whole update RUNS times out of RUNS: the first step of HEAP_LADDER that does, refined in
    REFINE_KIB steps above the step below it. Also ``fail_<heap>``: where the update stopped
    under each smaller size that was tried (and in which run)."""
    fails: dict[str, str] = {}
    below: str | None = None
    for heap in HEAP_LADDER:
        if not _completes(tmp, heap, max_payload, fails):
            below = heap
            continue
        if below is None:
            return heap, fails
        for k in range(_heap_bytes(below) // 1024 + REFINE_KIB, _heap_bytes(heap) // 1024,
                       REFINE_KIB):  # fmt: skip
            if _completes(tmp, f"{k}k", max_payload, fails):
                return f"{k}k", fails
        return heap, fails
    return None, fails


def _completes(tmp: Path, heap: str, max_payload: int | None, fails: dict[str, str]) -> bool:
    """RUNS whole updates under ``heap`` (each with its own nonces and keys: the heap's layout
    differs a little from run to run), all complete; else where the first that failed stopped."""
    for run in range(RUNS):
        why: list[str] = []
        if whole_update(tmp / f"{heap}-{run}", heap, max_payload, why, traced=False) is None:
            fails[f"fail_{heap}"] = (f"run {run + 1} of {RUNS}: " if run else "") + (
                why[-1] if why else "no answer"
            )
            return False
    return True


def _heap_bytes(h: str) -> int:
    return int(h[:-1]) * 1024 if h.endswith("k") else int(h)


def mpy_bytes() -> int:
    total = 0
    for sub in ("device", "protocol"):
        for p in (MPY / "otalink" / sub).glob("*.mpy"):
            total += p.stat().st_size
    return total


def main() -> int:
    out: dict[str, Any] = {}
    t0 = time.monotonic()
    crypto_live = 0
    with tempfile.TemporaryDirectory() as d:
        raw = bench_datapath(Path(d) / "raw", 256, False)
        dfl = bench_datapath(Path(d) / "deflate", 256, True)
        out["us_per_kib"] = raw["us_per_kib"]
        out["us_per_kib_deflate"] = dfl["us_per_kib"]
        out["end_readback_ms"] = round(raw["end_ms"], 1)
        out["begin_ms"] = round(raw["begin_ms"], 1)
        out["datapath_image_bytes"] = raw["image_bytes"]
        # the heap limit of the shipped agent (no memory hook), then the traced run's figures
        limit, fails = heap_limit(Path(d) / "whole")
        out.update(fails)
        out["heap_limit_bytes"] = _heap_bytes(limit) if limit else None
        out["fits_64k"] = limit is not None and _heap_bytes(limit) <= 65536
        why: list[str] = []
        r = whole_update(Path(d) / "whole-traced", TRACE_HEAP, why=why)
        out["peak_heap_bytes"] = r["peak_heap_bytes"] if r else None
        if r:
            out["peak_heap_where"] = r["peak_where"]
            crypto_live = r.get("crypto_live_bytes", 0)
            for k in ("qstr_count", "qstr_pools", "qstr_heap_bytes", "qstr_count_trial_boot"):
                if k in r:
                    out[k] = r[k]
        else:
            out["peak_heap_where"] = why[-1] if why else None
        # the same with 1 KiB frames (ECU config "max_payload": 1024)
        limit, _ = heap_limit(Path(d) / "whole1k", max_payload=1024)
        out["heap_limit_bytes_payload_1k"] = _heap_bytes(limit) if limit else None
        r = whole_update(Path(d) / "whole1k-traced", TRACE_HEAP, max_payload=1024)
        out["peak_heap_bytes_payload_1k"] = r["peak_heap_bytes"] if r else None
    out.update(bench_verify(crypto_live))
    ch = run_mp("codeheap", heap="512k")
    out["code_heap_bytes"] = ch["code_heap_bytes"]
    out["codec_code_heap_bytes"] = ch["codec_code_heap_bytes"]
    out["crypto_code_heap_bytes"] = ch["crypto_code_heap_bytes"]
    if out["peak_heap_bytes"] is not None:
        # what a board with the modules frozen in flash would need (approximate)
        out["peak_data_heap_bytes"] = out["peak_heap_bytes"] - ch["code_heap_bytes"]
    out["mpy_bytes"] = mpy_bytes()
    out["bench_seconds"] = round(time.monotonic() - t0, 1)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    width = max(len(k) for k in out)
    for k, v in out.items():
        print(f"{k:<{width}}  {v}")
    print(f"-> {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
