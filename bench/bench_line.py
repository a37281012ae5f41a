"""Serial-line benchmarks: ours vs mpremote and SMP (all three run here) and esptool (computed).

Run: ``make bench`` (or ``.venv/bin/python -m bench.bench_line [--quick] [--out DIR]``). Writes
``build/bench/results.json`` (flat dotted keys, e.g. ``ours.random.b115200.ratio``),
``build/bench/benchmarks.md`` and ``build/bench/bench_line.png``: build/ only. ``make
docs-figures`` copies the last two into docs/ when they are to be committed.

Figures (each one from the same run as the others of its row):
* ``ratio`` = image bytes / seconds from BEGIN written to the verified RESULT / line rate
  (baud / 10, 8N1); ``whole_ratio`` = image bytes / seconds from the first HELLO to CONFIRM's
  RESULT after ACTIVATE, REBOOT and the trial boot (bench/ecu_flow.py) / line rate.
* ours: the real agent (MicroPython unix port) behind a LineSim, with the unix board profile's
  own defaults (boards/unix/board.json link + heap budget), and per board profile
  (``ratio_<board>``: that profile's frame size, window and heap, bench/profiles.py);
* mpremote: ``mpremote cp`` to a MicroPython REPL behind the same LineSim;
* SMP: the real smpclient against an img_mgmt server double (bench/smp_server.py), console and
  raw transports, 384 and 1024-byte buffers;
* esptool: COMPUTED, esptool's own code against an emulated ESP32 (bench/esptool_model.py).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from otalink.host.gateway.ecu.errors import EcuError
from otalink.host.sim.line import LineSim
from otalink.host.sim.line.rig import EcuRig

from bench import ecu_flow, memtrace, profiles
from bench.esptool_model import esptool_run
from bench.smp_peer import smp_upload

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "bench"
VENV_BIN = Path(sys.executable).parent
IMAGE_LEN = 256 * 1024
LINES = [(115200, 0.0), (921600, 0.0), (115200, 0.008), (921600, 0.008)]
BOARD_LINE = (921600, 0.008)  # the per-board figures: the fast line with latency
SMP_LINES = [(115200, 0.0), (921600, 0.008)]
SMP_VARIANTS = [("console", 384), ("console", 1024), ("raw", 384), ("raw", 1024)]
SMP_HEADLINE_BUF = 1024  # smp_*.ratio (no suffix): the larger buffer, in SMP's favour
HEADLINE_BOARD = "unix"


def line_key(baud: int, lat: float) -> str:
    return f"b{baud}" + (f"_lat{round(lat * 1000)}" if lat else "")


# ---- images ----------------------------------------------------------------------------------
def random_image() -> bytes:
    """262144 bytes: a bootable bundle whose data file is random (seed 1), incompressible."""
    return ecu_flow.bench_bundle(random.Random(1).randbytes(IMAGE_LEN), total=IMAGE_LEN)


def firmware_binary() -> tuple[bytes, str]:
    """Debian's MicroPython for the micro:bit, Intel HEX -> binary (main flash segment)."""
    from intelhex import IntelHex

    work = BUILD / "firmware"
    work.mkdir(parents=True, exist_ok=True)
    debs = glob.glob(str(work / "firmware-microbit-micropython_*.deb"))
    if not debs:
        subprocess.run(
            ["apt-get", "download", "firmware-microbit-micropython"], cwd=work, check=True,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        debs = glob.glob(str(work / "firmware-microbit-micropython_*.deb"))
    deb = sorted(debs)[-1]
    tree = work / "x"
    if not tree.exists():
        subprocess.run(["dpkg-deb", "-x", deb, str(tree)], check=True)
    hexfile = next(tree.rglob("firmware.hex"))
    ih = IntelHex(str(hexfile))
    start, end = max(ih.segments(), key=lambda s: s[1] - s[0])
    return ih.tobinstr(start=start, end=end - 1), Path(deb).name


def firmware_image() -> tuple[bytes, str]:
    """The firmware binary carried in a bootable bundle (what the whole update boots)."""
    fw, name = firmware_binary()
    return ecu_flow.bench_bundle(fw), name


# ---- ours ------------------------------------------------------------------------------------
def _rig(
    workdir: Path, baud: int | None, lat: float, heap: str, board: str, trace: bool = False
) -> EcuRig:
    # The memory hook collects after every message: only the runs that measure the heap have it
    # (the timed figures are what an agent without it does).
    extra: dict[str, Any] = {"memtrace": True} if trace else {}
    extra.update(profiles.link_config(profiles.load(board)))
    return EcuRig(workdir, baud=baud, latency_s=lat, heapsize=heap, config_extra=extra)


def pick_heap(tmp: Path) -> str:
    """The unix profile's heap budget (64k); the next size up if the agent cannot install in it.
    The probe compresses (a 64-byte pattern): it takes the deflate decoder, the largest working
    set of the bench's images (a random probe, sent raw, once passed at a size where the
    firmware image's deflate transfer could not)."""
    probe = ecu_flow.bench_bundle(random.Random(2).randbytes(64) * 128)
    budget = profiles.load(HEADLINE_BOARD).heap_budget // 1024
    for heap in [f"{k}k" for k in (budget, 96, 128, 192, 256) if k >= budget]:
        rig = _rig(tmp / f"heap{heap}", 921600, 0.0, heap, HEADLINE_BOARD)
        try:
            rig.start(wait=False)
            rig.wait_ready(timeout=8)
            ecu_flow.update(rig, probe, whole=False)
            return heap
        except EcuError as exc:
            print(f"heap {heap}: {exc}", flush=True)
            continue
        finally:
            rig.stop()
    raise RuntimeError("the agent does not start")


def traced(
    tmp: Path, image: bytes, baud: int, lat: float, heap: str, tag: str,
    board: str = HEADLINE_BOARD,
) -> dict[str, Any]:  # fmt: skip
    """``ours`` with the agent's memory hook, for the heap figures. The hook's module and its
    samples take heap of their own: a run that does not fit ``heap`` with it is run again at the
    next size up; ``trace_heap`` says where the figures come from."""
    least = int(heap[:-1]) * 1024 if heap.endswith("k") else int(heap)
    sizes = [heap] + [f"{k}k" for k in (96, 128, 192, 256) if k * 1024 > least]
    for h in sizes:
        try:
            t = ours(tmp, image, baud, lat, h, f"{tag}_{h}", board=board, trace=True)
        except RuntimeError as exc:
            print(f"{tag}: with the memory hook at {h}: {exc}", flush=True)
            continue
        t["trace_heap"] = h
        return t
    raise RuntimeError(f"{tag}: the traced update fits none of {sizes}")


def ours(
    tmp: Path, image: bytes, baud: int, lat: float, heap: str, tag: str,
    board: str = HEADLINE_BOARD, trace: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """One whole update on a fresh rig; its figures (and, with ``trace``, the agent's memory
    trace: peak_heap_* keys, None without)."""
    rig = _rig(tmp / tag, baud, lat, heap, board, trace)
    try:
        with rig:  # (an agent that never answers fails at start: the same error as below)
            run = ecu_flow.update(rig, image)
            mem = memtrace.parse(rig.proc.output())
    except EcuError as exc:
        out = rig.proc.output()
        why = "MemoryError" if "MemoryError" in out else out.strip().splitlines()[-1:]
        raise RuntimeError(f"{tag} at -X heapsize={heap}: {exc} (agent: {why})") from exc
    if not run.confirmed:
        raise RuntimeError(f"{tag}: the ECU does not run the new image confirmed")
    out = run.figures()
    if trace:
        out.update(
            peak_heap_bytes=mem.peak,
            peak_heap_where=mem.where,
            peak_heap_between_bytes=mem.peak_between,
            peak_heap_inside_bytes=mem.peak_inside,
            heap_start_bytes=mem.start,
        )
    return out


def best_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the least BEGIN -> verified time; its whole figure comes with it."""
    return min(runs, key=lambda r: r["seconds"])


# ---- mpremote ------------------------------------------------------------------------------------
def mpremote(tmp: Path, image: bytes, baud: int, lat: float) -> dict[str, Any]:
    """``mpremote cp`` of the image to a MicroPython unix port REPL behind the same LineSim."""
    d = tmp / f"mpremote_{baud}_{lat}_{len(image)}"
    d.mkdir(parents=True, exist_ok=True)
    src = d / "image.bin"
    src.write_bytes(image)
    with LineSim(baud=baud, latency_s=lat) as sim:
        fd = os.open(sim.device_path, os.O_RDWR | os.O_NOCTTY)
        repl = subprocess.Popen(
            [str(VENV_BIN / "micropython")], stdin=fd, stdout=fd, stderr=fd, cwd=d,
            start_new_session=True,
        )  # fmt: skip
        try:
            time.sleep(0.5)
            t0 = time.monotonic()
            # "resume": no soft reset (Ctrl-D would end the unix port's REPL process)
            subprocess.run(
                [str(VENV_BIN / "mpremote"), "connect", sim.host_path, "resume", "cp",
                 str(src), ":copy.bin"],
                check=True, capture_output=True, timeout=900,
            )  # fmt: skip
            seconds = time.monotonic() - t0
        finally:
            repl.kill()
            repl.wait()
            os.close(fd)
        assert (d / "copy.bin").read_bytes() == image
        counters = sim.counters()
    return {"ratio": len(image) / seconds / (baud / 10), "seconds": seconds,
            "tx_bytes": counters["bytes_h2d"], "rx_bytes": counters["bytes_d2h"]}  # fmt: skip


# ---- vehicle ------------------------------------------------------------------------------------
def vehicle(tmp: Path, image: bytes, heap: str, baud: int = 115200) -> dict[str, Any]:
    """Three ECUs on three lines updated at once (HELLO + install each), against one alone."""

    def one(rig: EcuRig, out: list[float]) -> None:
        r = ecu_flow.update(rig, image, whole=False)
        out.append(r.hello_seconds + r.install_seconds)

    single: list[float] = []
    with EcuRig(tmp / "veh_one", baud=baud, heapsize=heap) as rig:
        t0 = time.monotonic()
        one(rig, single)
        t_one = time.monotonic() - t0
    rigs = [EcuRig(tmp / f"veh_{i}", ecu_id=f"ecu-{i}", baud=baud, heapsize=heap)
            for i in range(3)]  # fmt: skip
    times: list[float] = []
    try:
        for r in rigs:
            r.start()
        threads = [threading.Thread(target=one, args=(r, times)) for r in rigs]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        t_three = time.monotonic() - t0
    finally:
        for r in rigs:
            r.stop()
    assert len(times) == 3
    return {"one_seconds": t_one, "three_seconds": t_three, "time_ratio_to_one": t_three / t_one}


# ---- report ------------------------------------------------------------------------------
ANCHORS = {
    "mpremote": "0.33 (0.30 at 921600)",
    "smp_console": "0.57-0.71",
    "smp_raw": "0.91",
    "esptool_fw": "1.35x (firmware, zlib)",
    "esptool_random": "0.99",
}


def _f(v: Any, nd: int = 3) -> str:
    return "n/a" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else str(v))


def _chart(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(img, line_key(b, lat)) for img in ("random", "firmware") for b, lat in LINES
            if res.get(f"ours.{img}.{line_key(b, lat)}.ratio") is not None]  # fmt: skip
    series = [
        ("otalink (BEGIN->verified)", "ours.{}.{}.ratio"),
        ("otalink whole update", "ours.{}.{}.whole_ratio"),
        ("mpremote cp", "mpremote.{}.{}.ratio"),
        (
            f"SMP console, {SMP_HEADLINE_BUF} B",
            f"smp_console.{{}}.{{}}.ratio_buf{SMP_HEADLINE_BUF}",
        ),
        (f"SMP raw, {SMP_HEADLINE_BUF} B", f"smp_raw.{{}}.{{}}.ratio_buf{SMP_HEADLINE_BUF}"),
        ("esptool (computed)", "esptool.{}.{}.ratio"),
        ("esptool whole (computed)", "esptool.{}.{}.whole_ratio"),
    ]
    fig, ax = plt.subplots(figsize=(12, 5.2))
    xs = range(len(rows))
    w = 0.8 / len(series)
    top = 1.0
    for k, (name, key) in enumerate(series):
        vals = [res.get(key.format(img, lk)) or 0 for img, lk in rows]
        top = max([top, *vals])
        hatch = "//" if "computed" in name else None
        ax.bar([x + (k - (len(series) - 1) / 2) * w for x in xs], vals, w, label=name,
               hatch=hatch)  # fmt: skip
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xticks(list(xs), [f"{img}\n{lk}" for img, lk in rows], fontsize=8)
    ax.set_ylabel("image bytes / s / line rate")
    ax.set_title("256 KiB image over a paced UART: otalink, mpremote, SMP measured; "
                 "esptool COMPUTED (emulated ESP32)", fontsize=10)  # fmt: skip
    ax.set_ylim(0, top * 1.3)  # room for the legend above the bars
    ax.legend(fontsize=7, ncol=4, loc="upper center")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def board_ram(folder: Path = BUILD) -> list[dict[str, Any]]:
    """The rows of ``make bench-boards`` (build/bench/boards*.json), if it was run."""
    rows: list[dict[str, Any]] = []
    # the profiles' own links first (boards.json), then the --link variants
    for f in sorted(folder.glob("boards*.json"), key=lambda f: (f.name != "boards.json", f.name)):
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        rows += [r for r in data.values() if isinstance(r, dict) and "board" in r]
    return rows


def _delta_section(t: list[str], res: dict[str, Any]) -> None:
    """Delta updates (bench/bench_delta.py merges ``delta.*`` into results.json)."""
    names = sorted({k.split(".")[1] for k in res if k.startswith("delta.") and k.count(".") == 2})
    if not names:
        return
    t.append("## Delta updates: patch sizes (issue 13)\n")
    t.append("Release pairs fetched by `make bench` (`bench/delta_pairs.py`) and synthetic ones; "
             "detools sequential bsdiff patch, compression none; *full* and *patch* are what the "
             "link sends (deflate segments, wbits 10). Applied on the unix port by "
             "`device/delta.py` at `-X heapsize=64k`: "
             f"{_f(res.get('delta.apply_us_per_kib'))} µs/KiB with programming and hashing, "
             f"applier peak heap {_f(res.get('delta.apply_peak_heap_bytes'))} B (the minor "
             "pair); a whole delta update by the real agent (full install, then the patch): "
             f"live peak {_f(res.get('delta.peak_heap_bytes'))} B, smallest heap "
             f"{_f(res.get('delta.patch_heap_limit_bytes'))} B. "
             "**ratio at 115200**: result bytes / (seconds BEGIN→verified x 11520), the patch "
             "sent by the host's uploader (compression 4) through the paced line to the real "
             "agent, which applies it into the inactive slot and checks the result's sha256; "
             "*agent heap*: the agent's live peak in that run.\n")  # fmt: skip
    t.append("| pair | what | full (B) | patch (B) | size ratio | ratio at 115200 "
             "| agent heap (B) |")  # fmt: skip
    t.append("|---|---|---|---|---|---|---|")
    for n in names:
        d = f"delta.{n}."
        t.append(f"| {n} | {res.get(d + 'what', '')} | {_f(res.get(d + 'full_bytes'))} "
                 f"| {_f(res.get(d + 'patch_bytes'))} | "
                 f"**{_f(res.get(d + 'size_ratio'))}** | **{_f(res.get(d + 'b115200.ratio'))}** "
                 f"| {_f(res.get(d + 'agent_peak_heap_bytes'))} |")  # fmt: skip
    t.append("")


def write_report(
    res: dict[str, Any], meta: dict[str, Any], out: Path, ram: list[dict[str, Any]] | None = None
) -> list[Path]:
    """``out``/benchmarks.md and ``out``/bench_line.png from a results dict; the paths."""
    out.mkdir(parents=True, exist_ok=True)
    png = out / "bench_line.png"
    _chart(res, png)
    t: list[str] = []
    t.append("# Benchmarks: the serial line\n")
    run = meta.get("run", "n/a")
    t.append("Generated by `make bench` (`bench/bench_line.py`, into `build/bench/`) and copied "
             "here by `make docs-figures`; do not edit by hand. Figures: "
             f"`build/bench/results.json`. The run: {run}\n")  # fmt: skip
    t.append("**ratio** = image bytes / seconds / line rate (8N1: baud/10 bytes/s); above 1.0 "
             "compression carried more image than the line could carry raw. **BEGIN→verified**: "
             "from BEGIN written to the device's verified RESULT. **Whole update**: from the "
             "first HELLO to CONFIRM's RESULT, ACTIVATE, REBOOT, the trial boot (the agent "
             "restarts, extracts the bundle, runs its self-test) and CONFIRM included; same run "
             "as the BEGIN→verified figure of its row. Images are bootable bundles: random = "
             f"{IMAGE_LEN} bytes whose data file is random (seed 1); firmware = "
             f"`{meta.get('firmware')}` ({meta.get('firmware_bytes')} bytes) in a bundle "
             f"({meta.get('firmware_bundle_bytes')} bytes).\n")  # fmt: skip
    cfg = meta.get("headline_config")
    t.append(f"**Config of every otalink row below: {cfg}.** At 921600 "
             "baud the best of three runs (least BEGIN→verified time) is shown, all runs are in "
             "results.json.\n")  # fmt: skip
    t.append("## BEGIN→verified\n")
    t.append("| image | line | otalink | mpremote cp | SMP console 384 B | SMP console 1024 B "
             "| SMP raw 384 B | SMP raw 1024 B | esptool (computed) |")  # fmt: skip
    t.append("|---|---|---|---|---|---|---|---|---|")
    for img in ("random", "firmware"):
        for b, lat in LINES:
            lk = line_key(b, lat)
            if res.get(f"ours.{img}.{lk}.ratio") is None:
                continue
            cells = [
                _f(res.get(f"ours.{img}.{lk}.ratio")),
                _f(res.get(f"mpremote.{img}.{lk}.ratio")),
            ]
            for kind, buf in SMP_VARIANTS:
                cells.append(_f(res.get(f"smp_{kind}.{img}.{lk}.ratio_buf{buf}")))
            cells.append(_f(res.get(f"esptool.{img}.{lk}.ratio")))
            t.append(f"| {img} | {lk} | **{cells[0]}** | " + " | ".join(cells[1:]) + " |")
    t.append("")
    t.append("## Whole update\n")
    t.append("| image | line | otalink whole | seconds | BEGIN→verified s | reboot + trial boot s "
             "| esptool whole (computed) | esptool s (computed) |")  # fmt: skip
    t.append("|---|---|---|---|---|---|---|---|")
    for img in ("random", "firmware"):
        for b, lat in LINES:
            lk = line_key(b, lat)
            p = f"ours.{img}.{lk}."
            if res.get(p + "whole_ratio") is None:
                continue
            t.append(f"| {img} | {lk} | **{_f(res.get(p + 'whole_ratio'))}** | "
                     f"{_f(res.get(p + 'whole_seconds'), 2)} | {_f(res.get(p + 'seconds'), 2)} | "
                     f"{_f(res.get(p + 'reboot_seconds'), 2)} | "
                     f"{_f(res.get(f'esptool.{img}.{lk}.whole_ratio'))} | "
                     f"{_f(res.get(f'esptool.{img}.{lk}.whole_seconds'), 2)} |")  # fmt: skip
    t.append("")
    t.append("## Each board profile's own defaults (random image, 921600 baud + 8 ms)\n")
    t.append("The unix port runs the agent with the profile's link settings (`link.max_payload`, "
             "`link.window`) and heap (`-X heapsize`): the budget, minus the UART ring buffers "
             "where `machine.UART` allocates them on the MicroPython heap (rp2, stm32; "
             "bench/profiles.py). Peak heap: the agent's own trace, inside requests "
             "included.\n")  # fmt: skip
    t.append("| board | config | BEGIN→verified | whole update | peak heap (bytes) |")
    t.append("|---|---|---|---|---|")
    lk = line_key(*BOARD_LINE)
    for board in profiles.BOARDS:
        cfg = res.get(f"ours.random.{lk}.config_{board}")
        if cfg is None:
            continue
        err = res.get(f"ours.random.{lk}.error_{board}")
        if err is not None:
            t.append(f"| {board} | {cfg} | does not fit: {err} | n/a | n/a |")
            continue
        t.append(f"| {board} | {cfg} | **{_f(res.get(f'ours.random.{lk}.ratio_{board}'))}** | "
                 f"{_f(res.get(f'ours.random.{lk}.whole_ratio_{board}'))} | "
                 f"{_f(res.get(f'ours.random.{lk}.peak_heap_{board}'))} |")  # fmt: skip
    t.append("")
    if ram:
        t.append("## Heap per board profile (`make bench-boards`)\n")
        t.append("A whole update (64 KiB bundle, deploy with mpremote, reboot, trial, confirm) "
                 "per profile on the unix port; agent heap = the budget minus the UART ring "
                 "buffers where they live on the MicroPython heap; peak = the agent's memory "
                 "trace, inside requests included; budget needed = the least `-X heapsize` the "
                 "update completes under (1 KiB steps) + those UART buffers.\n")  # fmt: skip
        t.append("| board | frame / window / rxbuf | budget | agent heap | fits | peak (where) "
                 "| headroom | budget needed |")  # fmt: skip
        t.append("|---|---|---|---|---|---|---|---|")
        for r in ram:
            peak = r.get("peak_heap_bytes") or r.get("peak_heap_unbounded_bytes")
            where = r.get("peak_where") or r.get("peak_where_unbounded")
            fits = "yes" if r["fits_budget"] else "**no**"
            name = r["board"] + (" (`--link`)" if r.get("link_variant") else "")
            t.append(f"| {name} | {r['max_payload']} / {r['window']} / {r.get('rxbuf', '')} "
                     f"| {r['heap_budget']} | {r.get('agent_heap', r['heap_budget'])} | {fits} "
                     f"| {_f(peak)} ({where}) | {_f(r.get('headroom_bytes'))} "
                     f"| {_f(r.get('needs_budget_bytes'))} |")  # fmt: skip
        t.append("")
        for r in ram:
            if r.get("link_variant") or r["fits_budget"] or not r.get("needs_budget_bytes"):
                continue
            wide = [v["needs_budget_bytes"] for v in ram if v["board"] == r["board"]
                    and v.get("link_variant") and v["window"] >= 16000
                    and v.get("needs_budget_bytes")]  # fmt: skip
            more = (f", and a window of 16 KiB (what reaches >= 0.95 at 921600 baud + 8 ms on "
                    f"the other boards) {min(wide)} B." if wide else ".")  # fmt: skip
            t.append(f"**{r['board']}**: its heap budget ({r['heap_budget']} B) does not hold the "
                     f"agent with its UART buffers at its own link settings; that needs a budget "
                     f"of {r['needs_budget_bytes']} B{more}\n")  # fmt: skip
    _delta_section(t, res)
    t.append("## Key figures\n")
    t.append("| figure | measured | anchor / target |")
    t.append("|---|---|---|")
    pairs = [
        ("ours.random.b115200.ratio", ">= 0.97 (target); esptool random 0.99, SMP raw 0.91"),
        ("ours.random.b115200.whole_ratio", "the whole update, same run"),
        ("ours.random.b921600_lat8.ratio", ">= 0.95 (target)"),
        ("ours.random.b921600_lat8.whole_ratio", "the whole update, same run"),
        ("ours.firmware.b115200.ratio", ">= 1.40 (target); esptool 1.35x"),
        ("ours.firmware.b115200.whole_ratio", "the whole update, same run"),
        *[(f"ours.random.b921600_lat8.ratio_{b}", ">= 0.95 where the RAM allows (target)")
          for b in profiles.BOARDS],
        ("mpremote.random.b115200.ratio", ANCHORS["mpremote"]),
        ("smp_console.random.b115200.ratio", ANCHORS["smp_console"] + " (measured, smpclient)"),
        ("smp_raw.random.b115200.ratio", ANCHORS["smp_raw"] + " (measured, smpclient)"),
        ("esptool.random.b115200.ratio", ANCHORS["esptool_random"] + " (computed)"),
        ("esptool.firmware.b115200.ratio", ANCHORS["esptool_fw"] + " (computed)"),
        ("esptool.random.b115200.whole_ratio", "computed, with reset/sync/stub/erase"),
        ("speedup_vs_mpremote.random.b115200", ">= 3x (target); at most ~1/mpremote's ratio"),
        ("speedup_vs_mpremote.firmware.b115200", ">= 3x (target), the firmware image"),
        ("device.peak_heap_bytes", "64 KiB heap budget (boards/unix); inside requests"),
        ("device.peak_heap_where", "the sample that set it"),
        ("device.deflate_wbits", "bounded window: 2**wbits bytes"),
        ("vehicle.three_ecus.time_ratio_to_one", "close to 1 (three parallel lines)"),
    ]  # fmt: skip
    for k, anchor in pairs:
        t.append(f"| `{k}` | {_f(res.get(k))} | {anchor} |")
    t.append("")
    t.append("![ratios: otalink, mpremote and SMP measured, esptool computed](bench_line.png)\n")
    t.append(METHOD)
    md = out / "benchmarks.md"
    md.write_text("\n".join(t) + "\n")
    return [md, png]


METHOD = """## How each figure is made

- **otalink**: the real agent (`device/`, MicroPython unix port, `-X heapsize`) writing an
  emulated NOR flash, behind `LineSim` (paced ptys: 10 bits per byte, one-way latency), driven by
  `EcuClient` (bench/ecu_flow.py). The whole update reboots the agent (the ECU runner restarts
  it like a board's reset); the host re-sends HELLO, all with one nonce, every max(50 ms, its
  first HELLO→INFO time) until the trial boot answers. A STATUS after CONFIRM (outside the clock)
  checks the new image is active, confirmed and byte-exact in flash.
- **Peak heap**: the agent's memory trace (ECU config `memtrace`): the live heap after a
  collection, sampled after every message and inside requests where a request's heap peaks (a
  lazily loaded group about to be dropped with what the request built still live: BEGIN's
  instruction decode and ed25519 check, report signing, signed commands; device/memhook.py);
  bench/memtrace.py reads it. The transient big-integer temporaries inside one ed25519
  verification are not sampled: `make bench-device` measures the free heap one verification
  needs (`ed25519_verify_room_bytes`).
- **mpremote cp**: the real `mpremote` against a MicroPython REPL on the same kind of line.
- **SMP** (measured): the real `smpclient` (PyPI) `SMPClient.upload`, over the same LineSim,
  against bench/smp_server.py, a test double of a Zephyr device: console transport (base64
  lines of 128 bytes, CRC16, a packet buffer of `CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE` = 384 or
  1024 bytes, read by smpclient from the MCUmgr parameters) and raw UART transport
  (`SMPSerialRawTransport`, header-sized packets of at most the same buffer), img_mgmt upload
  semantics (MCUboot header check, erase at offset 0, expected-offset answers, SHA-256 `match`
  at the end) into a file. The image is the same bundle in an MCUboot image (+72 bytes of header
  and TLV, counted as SMP's overhead). `smp_*.ratio` without a suffix is the 1024-byte buffer.
  SMP has no compression, so the firmware image is not run (it moves at the random image's rate).
- **esptool** (COMPUTED, esptool cannot run here): esptool 5's own `write-flash` code (reset into
  the bootloader, sync, chip detection, stub upload at 115200, baud change, flash attach,
  deflate, per-block stop-and-wait, MD5 verify, hard reset) against an emulated ESP32 on a
  virtual clock: line time per byte, the latency, esptool's own sleeps, and the stub's
  erase-as-you-go with typical SPI NOR times (W25Q32JV: page program 0.4 ms, 4 KiB sector erase
  45 ms, 64 KiB block erase 150 ms); bench/esptool_model.py. The narrow figure runs from
  FLASH_DEFL_BEGIN to the verified MD5, the whole figure from the reset to the hard reset.
"""


# ---- main ------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--quick", action="store_true",
        help="one run per line; no mpremote, no vehicle, SMP with 1024 B only",
    )  # fmt: skip
    ap.add_argument("--out", type=Path, default=BUILD, help="output folder (default build/bench)")
    ap.add_argument(
        "--report-only", action="store_true",
        help="render benchmarks.md and the chart again from OUT/results.json (e.g. after "
             "`make bench-boards`), no measuring",
    )  # fmt: skip
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        res = json.loads((args.out / "results.json").read_text())
        meta = {k[5:]: v for k, v in res.items() if k.startswith("meta.")}
        for p in write_report(res, meta, args.out, board_ram(args.out)):
            print(f"-> {p}")
        return 0
    BUILD.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench_line_", dir=BUILD))
    res: dict[str, Any] = {}
    try:
        rnd = random_image()
        fw, fw_name = firmware_image()
        images = {"random": rnd, "firmware": fw}
        heap = pick_heap(tmp)
        unix = profiles.load(HEADLINE_BOARD)
        meta = {
            "run": (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, host "
                    f"`{os.uname().nodename}`, {os.cpu_count()} CPUs, load average at start "
                    f"{os.getloadavg()[0]:.2f}."),
            "firmware": fw_name,
            "firmware_bytes": len(firmware_binary()[0]),
            "firmware_bundle_bytes": len(fw),
            "headline_config": (f"the `{HEADLINE_BOARD}` board profile's own defaults, frame "
                                f"{unix.link.max_payload} B, window {unix.link.window} B, "
                                f"heap `-X heapsize={heap}`"),
        }  # fmt: skip
        res.update({f"meta.{k}": v for k, v in meta.items()})
        res["meta.heap"] = heap
        res["meta.max_payload"] = unix.link.max_payload
        res["meta.window"] = unix.link.window
        res["meta.load_start"] = os.getloadavg()[0]
        traces: list[dict[str, Any]] = []  # the runs with the memory hook (heap figures)
        reps_fast = 1 if args.quick else 3
        for img_name, image in images.items():
            for baud, lat in LINES:
                lk = line_key(baud, lat)
                reps = reps_fast if baud > 115200 else 1
                runs = [ours(tmp, image, baud, lat, heap, f"{img_name}_{lk}_{k}")
                        for k in range(reps)]  # fmt: skip
                r = best_run(runs)
                res[f"ours.{img_name}.{lk}.runs_ratio"] = [x["ratio"] for x in runs]
                res[f"ours.{img_name}.{lk}.runs_whole_ratio"] = [x["whole_ratio"] for x in runs]
                for k, v in r.items():
                    res[f"ours.{img_name}.{lk}.{k}"] = v
                e = esptool_run(image, baud, lat)
                for k, v in e.items():
                    res[f"esptool.{img_name}.{lk}.{k}"] = v
                print(f"{img_name:8} {lk:14} ours {r['ratio']:.3f} whole {r['whole_ratio']:.3f}"
                      f"  esptool (computed) {e['ratio']:.3f} whole {e['whole_ratio']:.3f}",
                      flush=True)  # fmt: skip
            # the heap of the same whole update, measured in a run of its own with the hook
            t = traced(tmp, image, 921600, 0.0, heap, f"{img_name}_trace")
            traces.append(t)
            res[f"ours.{img_name}.trace_heap"] = t["trace_heap"]
            res[f"ours.{img_name}.peak_heap_bytes"] = t["peak_heap_bytes"]
            res[f"ours.{img_name}.peak_heap_where"] = t["peak_heap_where"]
        # each board profile's own link settings and heap, on the fast line with latency
        lk = line_key(*BOARD_LINE)
        for name in profiles.BOARDS:
            board = profiles.load(name)
            bheap = str(profiles.agent_heap(board))
            res[f"ours.random.{lk}.config_{name}"] = profiles.describe(board)
            try:
                runs = [ours(tmp, rnd, *BOARD_LINE, bheap, f"board_{name}_{k}", board=name)
                        for k in range(reps_fast)]  # fmt: skip
            except RuntimeError as exc:  # the profile's RAM does not hold the agent
                res[f"ours.random.{lk}.ratio_{name}"] = None
                res[f"ours.random.{lk}.error_{name}"] = str(exc)
                print(f"board {name:6} {profiles.describe(board)}: FAILS {exc}", flush=True)
                continue
            r = best_run(runs)
            res[f"ours.random.{lk}.ratio_{name}"] = r["ratio"]
            res[f"ours.random.{lk}.whole_ratio_{name}"] = r["whole_ratio"]
            res[f"ours.random.{lk}.runs_ratio_{name}"] = [x["ratio"] for x in runs]
            t = traced(tmp, rnd, *BOARD_LINE, bheap, f"board_{name}_trace", board=name)
            traces.append(t)
            res[f"ours.random.{lk}.trace_heap_{name}"] = t["trace_heap"]
            res[f"ours.random.{lk}.peak_heap_{name}"] = t["peak_heap_bytes"]
            print(f"board {name:6} {profiles.describe(board)}: {r['ratio']:.3f} "
                  f"whole {r['whole_ratio']:.3f}", flush=True)  # fmt: skip
        # SMP, run: smpclient against the Zephyr-like server double
        variants = [v for v in SMP_VARIANTS if not args.quick or v[1] == SMP_HEADLINE_BUF]
        for baud, lat in SMP_LINES:
            lk = line_key(baud, lat)
            for kind, buf in variants:
                s = smp_upload(rnd, baud, lat, tmp / "smp", kind, buf)
                p = f"smp_{kind}.random.{lk}."
                res[p + f"ratio_buf{buf}"] = s["ratio"]
                res[p + f"seconds_buf{buf}"] = s["seconds"]
                res[p + f"requests_buf{buf}"] = s["requests"]
                res[p + f"tx_bytes_buf{buf}"] = s["tx_bytes"]
                if buf == SMP_HEADLINE_BUF:
                    res[p + "ratio"] = s["ratio"]
                    res[p + "seconds"] = s["seconds"]
                print(f"smp {kind:7} {buf:5} {lk:14} {s['ratio']:.3f}", flush=True)
        # the unix profile's agent at its 64k (the per-board peaks are their own keys)
        peaks = [x for x in traces[: len(images)] if x["peak_heap_bytes"]]
        if peaks:
            top = max(peaks, key=lambda x: x["peak_heap_bytes"])
            res["device.peak_heap_bytes"] = top["peak_heap_bytes"]
            res["device.peak_heap_where"] = top["peak_heap_where"]
            # (the agent prints a sample only when it is a new peak: with the samples inside
            # requests higher, "between messages" often prints nothing at all -> None)
            between = [x["peak_heap_between_bytes"] for x in peaks if x["peak_heap_between_bytes"]]
            inside = [x["peak_heap_inside_bytes"] for x in peaks if x["peak_heap_inside_bytes"]]
            res["device.peak_heap_between_messages_bytes"] = max(between) if between else None
            res["device.peak_heap_in_message_bytes"] = max(inside) if inside else None
            res["device.heap_start_bytes"] = min(x["heap_start_bytes"] or 0 for x in peaks)
        with _rig(tmp / "caps", None, 0.0, heap, HEADLINE_BOARD) as rig:
            res["device.deflate_wbits"] = ecu_flow.capabilities(rig)["deflate_wbits"]
        if not args.quick:
            for baud, lat in ((115200, 0.0), (921600, 0.0)):
                lk = line_key(baud, lat)
                m = mpremote(tmp, rnd, baud, lat)
                res[f"mpremote.random.{lk}.ratio"] = m["ratio"]
                res[f"mpremote.random.{lk}.seconds"] = m["seconds"]
                print(f"mpremote random {lk} {m['ratio']:.3f}", flush=True)
            res["speedup_vs_mpremote.random.b115200"] = (
                res["mpremote.random.b115200.seconds"] / res["ours.random.b115200.seconds"]
            )
            # The same firmware image both ways: what a user flashing a real image gets (random
            # data caps ours at ~0.99 of line rate, so the random speedup is ~1 / mpremote's ratio)
            m = mpremote(tmp, fw, 115200, 0.0)
            res["mpremote.firmware.b115200.ratio"] = m["ratio"]
            res["mpremote.firmware.b115200.seconds"] = m["seconds"]
            print(f"mpremote firmware b115200 {m['ratio']:.3f}", flush=True)
            res["speedup_vs_mpremote.firmware.b115200"] = (
                res["mpremote.firmware.b115200.seconds"] / res["ours.firmware.b115200.seconds"]
            )
            v = vehicle(tmp, rnd, heap)
            for k, val in v.items():
                res[f"vehicle.three_ecus.{k}"] = val
            print(f"vehicle ratio {v['time_ratio_to_one']:.3f}", flush=True)
        (args.out / "results.json").write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
        write_report(res, meta, args.out, board_ram())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for k in sorted(res):
        if (
            k.endswith((".ratio", ".whole_ratio"))
            or ".ratio_" in k
            or k.startswith(("device.", "vehicle.", "speedup"))
        ):
            print(f"{k} = {res[k]}")
    print(f"-> {args.out / 'results.json'}, {args.out / 'benchmarks.md'}, "
          f"{args.out / 'bench_line.png'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
