"""Figures of the ECU component (issue 11): prints them and merges them into
build/bench/device.json (``make bench-device`` runs bench/bench_device.py first, then this).

The real loader, agent and example application (boards/examples/bms.py) under the real ECU
runner (its emulated watchdog), on real ptys:

* ``agent_idle_heap_bytes``  live heap the agent holds at rest beside the running application
  (a HELLO answered, then the line quiet: the agent rests; measured by the application's own loop,
  since a request on the line would wake the engine): the ECU's idle heap minus the same loader,
  application and flash emulator booted with the null agent (bench/null_agent.py, the loader's
  interface with nothing behind it, whose own heap ``null_agent_heap_bytes`` is counted on the
  agent's side). On the unix port loaded code and interned names live in the heap, so this counts
  the agent's resident code and every name only the agent interned; what the loader keeps and
  interned for good (a board has it frozen: ROM) is ``loader_idle_heap_bytes``.
  ``ecu_idle_heap_bytes`` / ``app_alone_heap_bytes`` / ``null_ecu_heap_bytes`` are the measured
  sides; ``ecu_minus_app_idle_heap_bytes`` the ECU minus the application alone (loader, agent and
  emulator together); ``ecu_awake_heap_bytes`` the ECU with a request in flight;
  ``ecu_idle_qstr_count`` / ``ecu_idle_qstr_pools`` its interned names at rest;
  ``flash_emulator_heap_bytes`` the emulator's share (the chip: a board's flash driver is C);
* ``app_max_stall_ms``  the worst lateness of the application's 10 ms periodic task over a whole
  update, HELLO to CONFIRM (both boots: the transfer's and the trial's), at 921600 baud over
  host/sim/line's LineSim (paced pty pair; 8N1), image sent raw-deflated;
* ``app_update_heap_limit_bytes``  the smallest ``-X heapsize`` (a ladder, refined in 4 KiB
  steps above the step below the first that passes) at which a whole update completes while
  the application runs and holds 16 KiB of live data of its own;
  ``app_update_peak_heap_bytes`` / ``app_update_peak_where`` the same update's live peak at
  256k (the agent's memory trace, config "memtrace") and ``app_update_qstr_count`` /
  ``app_update_qstr_pools`` the names that boot interned by then (name 621 allocates a sixth
  pool, ~7 KB at once: docs/device.md "Interned names");
* ``agent_idle_cpu_percent``  CPU of the ECU process over 10 s of idling beside the application,
  minus the application alone's over the same time, in % of one core;
  ``agent_idle_cpu_percent_no_app``: an ECU without an application (the agent's own loop);
* ``loader_mpy_bytes``  the loader's size: the .mpy files of loader.py and what it runs at boot.

    python -m bench.bench_component            (part of `make bench-device`)
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import time
import tty
import zlib
from pathlib import Path
from typing import Any

from otalink.host.sim.ecusim import build_image, micropython_exe, mpy_path
from otalink.host.sim.line.sim import LineSim
from otalink.protocol import codes, messages

from tests.device_component._ecu import BMS, Component, image

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "bench" / "device.json"  # merged: bench_device.py's figures stay
ALONE = Path(__file__).resolve().parent / "component_alone.py"
NULL = Path(__file__).resolve().parent / "null_agent.py"
HEAP = "256k"  # the figures other than the heap limit: enough room not to measure the GC
LADDER = ["64k", "72k", "80k", "88k", "96k", "112k", "128k", "144k", "160k", "192k", "256k"]
REFINE_KIB = 4  # the limit's resolution below the first ladder step that passes
RUNS = 3  # a heap size counts when this many whole updates in a row complete under it
LOADER = ("loader", "boot", "supervise", "wdt", "start", "config", "bundle", "flash",
          "flashcfg", "nor", "slots", "store", "decide", "main")  # fmt: skip
# The application holding 16 KiB of live data from its start (the heap-limit figure)
_MAIN = b"async def main(agent):\n"
BMS_16K = BMS.replace(_MAIN, _MAIN + b"    _live.append(bytearray(16384))\n")
assert BMS_16K != BMS, "boards/examples/bms.py: no `async def main(agent):` line"
SLOW = {"wdt_ms": 5000, "trial_ms": 300000, "alive_ms": 5000}


def _ecu(tmp: Path, heap: str, line: LineSim | None = None) -> Component:
    e = Component(tmp, heap=heap, extra=SLOW)
    if line is not None:
        cfg = json.loads(e.cfg_path.read_text())
        cfg["line"] = {"path": line.device_path}
        e.cfg_path.write_text(json.dumps(cfg))
        os.close(e.master)
        e.master = os.open(line.host_path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(e.master)
    return e


def _deflate(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -10)
    return c.compress(data) + c.flush()


def whole_update(e: Component, img: bytes, version: str, rc: int) -> None:
    """HELLO .. CONFIRM, the image raw-deflated (compression 1)."""
    e.hello()
    wire = _deflate(img)
    instr = e.instruction(img, version=version, release_counter=rc)
    ack = e.begin(img, instr=instr, compression=codes.COMP_DEFLATE, wire_len=len(wire))
    assert ack[0] == codes.MSG_ACK, ack
    assert e.send_data(wire, ack[1]) == len(wire)
    r = e.request(messages.end(len(wire)), 60)
    assert r[:3] == [codes.MSG_RESULT, codes.MSG_END, codes.OK], r
    r = e.cmd(codes.MSG_ACTIVATE)
    assert r[:3] == [codes.MSG_RESULT, codes.MSG_ACTIVATE, codes.OK], r


def _stats(e: Component, reset: bool = False) -> tuple[int, int, int]:
    r = e.app_request(2, b"\x00" if reset else b"")
    assert r[0] == codes.MSG_APP, r
    worst, periods, late = struct.unpack("<III", r[3])
    return worst, periods, late


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def _alone(seconds: float, app_src: bytes) -> dict[str, Any]:
    """The application alone (bench/component_alone.py): its live heap and CPU."""
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "app.py").write_bytes(app_src)
        env = dict(os.environ, MICROPYPATH=".frozen:" + d)
        proc = subprocess.Popen(
            [micropython_exe(), "-X", f"heapsize={HEAP}", str(ALONE), str(seconds)],
            stdout=subprocess.PIPE, text=True, env=env, cwd=d,
        )  # fmt: skip
        time.sleep(1.0)
        c0 = _cpu(proc.pid)
        out, _ = proc.communicate(timeout=seconds + 30)
        r: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        r["cpu_s"] = r["cpu_s_total"] - c0
        return r


def idle(d: Path) -> dict[str, Any]:
    """Idle heap and CPU beside the application; the CPU of an ECU without one."""
    out: dict[str, Any] = {}
    e = _ecu(d / "idle", HEAP)
    try:
        e.start()
        e.hello()
        e.install(image(BMS), "1.0.0", 1)
        e.reboot()  # a clean boot of the confirmed image, then a HELLO answered
        time.sleep(1.0)
        heaps = []
        for _ in range(3):
            # measured by the application's own loop 1.5 s after this request: a request on the
            # line wakes the agent's engine, which rests again once the line is quiet
            r = e.app_request(5, struct.pack("<I", 1500))
            assert r[3] == b"ok", r
            time.sleep(2.0)
            r = e.app_request(6, b"")
            heaps.append(struct.unpack("<I", r[3])[0])
        assert min(heaps) > 0, heaps
        out["ecu_idle_heap_bytes"] = min(heaps)
        # the interned names then (bms.py prints qstr_info with its delayed probe): the pools
        # hold 620 names in 5; name 621 allocates a sixth of ~8 KB
        q = re.findall(r"qstr pool: n_pool=(\d+), n_qstr=(\d+)", e.output())
        if q:
            out["ecu_idle_qstr_pools"] = int(q[-1][0])
            out["ecu_idle_qstr_count"] = int(q[-1][1])
        r = e.app_request(5, b"")  # the same, awake: a request in flight on the line
        out["ecu_awake_heap_bytes"] = struct.unpack("<I", r[3])[0]
        pid = e.runner.pid
        assert pid is not None
        c0 = _cpu(pid)
        time.sleep(10.0)
        ecu_cpu = _cpu(pid) - c0
    finally:
        e.close()
    alone = _alone(10.0, BMS)
    out["app_alone_heap_bytes"] = alone["heap"]
    # what the loader, the application and the flash emulator hold without the agent: the same
    # loader and application booted with the null agent (bench/null_agent.py) as the slot's agent
    null = _null_ecu(d / "null")
    out["null_ecu_heap_bytes"] = null
    out["null_agent_heap_bytes"] = _null_agent_heap()
    loader = null - out["null_agent_heap_bytes"] - alone["heap"]
    out["loader_idle_heap_bytes"] = loader
    out["agent_idle_heap_bytes"] = out["ecu_idle_heap_bytes"] - alone["heap"] - loader
    out["ecu_minus_app_idle_heap_bytes"] = out["ecu_idle_heap_bytes"] - alone["heap"]
    out["agent_idle_cpu_percent"] = round(max(0.0, ecu_cpu - alone["cpu_s"]) / 10.0 * 100, 2)
    out["ecu_idle_cpu_percent"] = round(ecu_cpu / 10.0 * 100, 2)
    out["app_alone_cpu_percent"] = round(alone["cpu_s"] / 10.0 * 100, 2)
    # no application (a fresh ECU: the recovery agent's own loop, without the event loop)
    e = _ecu(d / "noapp", HEAP)
    try:
        e.start()
        e.hello()
        time.sleep(1.0)
        pid = e.runner.pid
        assert pid is not None
        c0 = _cpu(pid)
        time.sleep(10.0)
        out["agent_idle_cpu_percent_no_app"] = round((_cpu(pid) - c0) / 10.0 * 100, 2)
    finally:
        e.close()
    out["flash_emulator_heap_bytes"] = _emulator_heap()
    return out


def _null_ecu(d: Path) -> int:
    """The live heap of an ECU whose slot runs the null agent beside the application: the real
    agent installs the application (1.0.0), then an image with the null agent as its agent
    (2.0.0) is activated; its trial boot prints the heap after null_agent.DELAY_MS."""
    e = _ecu(d, HEAP)
    try:
        e.start()
        e.hello()
        e.install(image(BMS), "1.0.0", 1)
        img = build_image({"app.py": BMS}, "app", agent={"null_agent.py": NULL.read_bytes()},
                          agent_entry="null_agent")  # fmt: skip
        r = e.transfer(img, version="2.0.0", release_counter=2)
        assert r[:4] == [codes.MSG_RESULT, codes.MSG_END, codes.OK, 0], r
        r = e.cmd(codes.MSG_ACTIVATE)
        assert r[:3] == [codes.MSG_RESULT, codes.MSG_ACTIVATE, codes.OK], r
        boots = e.runner.boots
        r = e.cmd(codes.MSG_REBOOT)
        assert r[:3] == [codes.MSG_RESULT, codes.MSG_REBOOT, codes.OK], r
        e.wait_boots(boots + 1)
        end = time.monotonic() + 20
        while time.monotonic() < end:
            m = re.findall(r"otalink-null heap=(\d+)", e.output())
            if m:
                return int(m[-1])
            time.sleep(0.2)
        raise AssertionError("the null agent never reported: " + e.output()[-1500:])
    finally:
        e.close()


def _null_agent_heap() -> int:
    """The null agent's own heap (its module and object, names included): counted on the
    agent's side, not the loader's."""
    code = (
        "import gc\nimport sys\ngc.collect()\na = gc.mem_alloc()\nimport null_agent\n"
        "class B:\n    trial = False\n    boot_state = last_error = fault = 0\n    bdev = None\n"
        "x = null_agent.make(B())\ngc.collect()\nprint(gc.mem_alloc() - a)\n"
    )
    r = subprocess.run([micropython_exe(), "-c", code], capture_output=True, text=True,
                       env=dict(os.environ, MICROPYPATH=str(NULL.parent)), check=True)  # fmt: skip
    return int(r.stdout.split()[-1])


def _emulator_heap() -> int:
    code = (
        "import gc\ngc.collect()\na = gc.mem_alloc()\nfrom otalink.device.nor import NorFlash\n"
        "f = NorFlash('/tmp/otalink-bench-nor.bin', 65536, 4096, 4)\ngc.collect()\n"
        "print(gc.mem_alloc() - a)\n"
    )
    r = subprocess.run([micropython_exe(), "-c", code], capture_output=True, text=True,
                       env=dict(os.environ, MICROPYPATH=str(mpy_path())), check=True)  # fmt: skip
    os.unlink("/tmp/otalink-bench-nor.bin")
    return int(r.stdout.split()[-1])


def stall(d: Path) -> dict[str, Any]:
    """The application's worst lateness over a whole update at 921600 baud (LineSim)."""
    with LineSim(baud=921600) as line:
        e = _ecu(d / "stall", HEAP, line)
        try:
            e.start()
            e.hello()
            e.install(image(BMS), "1.0.0", 1)
            e.reboot()
            t0 = time.monotonic()
            _stats(e, reset=True)
            whole_update(e, image(BMS + b"# 2.0.0\n"), "2.0.0", 2)
            w1, p1, l1 = _stats(e)
            e.reboot()  # the trial boot: its application's periods from its start
            r = e.cmd(codes.MSG_CONFIRM)
            assert r[:3] == [codes.MSG_RESULT, codes.MSG_CONFIRM, codes.OK], r
            w2, p2, l2 = _stats(e)
            return {
                "app_max_stall_ms": max(w1, w2),
                "app_periods_during_update": p1 + p2,
                "app_late_periods_during_update": l1 + l2,
                "update_seconds_921600": round(time.monotonic() - t0, 1),
                "line": "host/sim/line LineSim 921600 baud (8N1), no faults",
            }
        finally:
            e.close()


def _completes(d: Path, h: str, fails: dict[str, str]) -> bool:
    """RUNS whole updates in a row complete under heap ``h`` (each with its own nonces and
    keys: the heap's layout differs a little from run to run); else where the first that failed
    stopped, in ``fails``."""
    for run in range(RUNS):
        if not _completes_once(d / f"run{run}", h, fails):
            if run:
                k = f"app_update_fail_{h}"
                fails[k] = f"run {run + 1} of {RUNS}: {fails[k]}"
            return False
    return True


def _completes_once(d: Path, h: str, fails: dict[str, str]) -> bool:
    """A whole update beside the application holding 16 KiB of live data (install, then the
    update under test; both under heap ``h``); False with where it stopped in ``fails``."""
    e = _ecu(d / f"limit-{h}", h)
    step = "start"
    try:
        e.start()
        e.hello()
        step = "install"
        e.install(image(BMS_16K), "1.0.0", 1)
        step = "update"
        whole_update(e, image(BMS_16K + b"# 2\n"), "2.0.0", 2)
        step = "trial"
        e.reboot()
        r = e.cmd(codes.MSG_CONFIRM)
        assert r[:3] == [codes.MSG_RESULT, codes.MSG_CONFIRM, codes.OK], r
    except (AssertionError, OSError, subprocess.TimeoutExpired) as err:
        fails[f"app_update_fail_{h}"] = _why(e, step, err)
        return False
    finally:
        e.close()
    return True


def heap_limit(d: Path) -> dict[str, Any]:
    """The smallest heap at which a whole update completes beside the application holding
    16 KiB of live data, RUNS times out of RUNS: the first LADDER step that does, refined in
    REFINE_KIB steps above the step below it."""
    fails: dict[str, str] = {}
    below = None
    for h in LADDER:
        if not _completes(d, h, fails):
            below = int(h[:-1])
            continue
        limit = int(h[:-1])
        if below is not None:
            for k in range(below + REFINE_KIB, limit, REFINE_KIB):
                if _completes(d, f"{k}k", fails):
                    limit = k
                    break
        return {"app_update_heap_limit_bytes": limit * 1024, **fails}
    return {"app_update_heap_limit_bytes": None, **fails}


def update_trace(d: Path) -> dict[str, Any]:
    """The heap-limit figure's update (application holding 16 KiB) at HEAP with the agent's
    memory trace: its live peak, where, and the names its boot interned."""
    from bench import memtrace

    e = _ecu(d / "trace", HEAP)
    try:
        e.start({"OTALINK_MEMTRACE": "1"})
        e.hello()
        e.install(image(BMS_16K), "1.0.0", 1)
        mark = len(e.output())
        whole_update(e, image(BMS_16K + b"# 2\n"), "2.0.0", 2)
        e.reboot()  # the update's boot reports its names at REBOOT
        seg = e.output()[mark:]
    finally:
        e.close()
    boot = seg.split("otalink-mem start=")[0]  # up to the trial boot
    t = memtrace.parse(boot)
    q = re.findall(r"qstr pool: n_pool=(\d+), n_qstr=(\d+)", boot)
    return {
        "app_update_peak_heap_bytes": t.peak,
        "app_update_peak_where": t.where,
        "app_update_qstr_pools": int(q[-1][0]) if q else None,
        "app_update_qstr_count": int(q[-1][1]) if q else None,
    }


def _why(e: Component, step: str, err: BaseException) -> str:
    """Where a heap-ladder run stopped: the step, the reason the flash records (a fault of the
    application or agent, the last revert reason) and the ECU's last MemoryError line."""
    out = f"{step}"
    try:
        st = e.state()
        out += f": last_error {st.last_error}, boot_state {st.boot_state}"
    except (AssertionError, OSError):
        pass
    mem = [ln.strip() for ln in e.output().splitlines() if "MemoryError" in ln or "otalink:" in ln]
    if mem:
        out += " <- " + " | ".join(mem[-2:])[:200]
    elif str(err):
        out += " <- " + str(err).splitlines()[0][:120]
    return out


def loader_size() -> dict[str, Any]:
    tree = mpy_path() / "otalink"
    files = [tree / "device" / f"{m}.mpy" for m in LOADER] + [tree / "protocol" / "errors.mpy"]
    return {"loader_mpy_bytes": sum(f.stat().st_size for f in files), "loader_modules": len(files)}


def main() -> int:
    t0 = time.monotonic()
    out: dict[str, Any] = {}
    out.update(loader_size())
    with tempfile.TemporaryDirectory() as td:
        d = Path(td)
        out.update(idle(d))
        out.update(stall(d))
        out.update(heap_limit(d))
        out.update(update_trace(d))
    out["bench_seconds"] = round(time.monotonic() - t0, 1)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    merged: dict[str, Any] = json.loads(OUT.read_text()) if OUT.exists() else {}
    merged.update({k: v for k, v in out.items() if k != "bench_seconds"})
    merged["component_bench_seconds"] = out["bench_seconds"]
    OUT.write_text(json.dumps(merged, indent=1) + "\n")
    width = max(len(k) for k in out)
    for k, v in out.items():
        print(f"{k:<{width}}  {v}")
    print(f"-> {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
