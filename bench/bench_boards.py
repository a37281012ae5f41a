"""Memory budget per board profile, measured on the MicroPython unix port (figures, not a test).

    python -m bench.bench_boards [--boards unix,esp32,rp2,stm32] [--image-kib N]

For each profile: an emulated board (the unix port on a pty REPL, ``-X heapsize=`` = the board's
heap budget) gets the agent through ``otalink device deploy`` (mpremote, .mpy files loaded from the
board's filesystem, as on a real board without freezing), with the profile's link window, frame
size and flash geometry; then one full update over its line: HELLO, BEGIN (ed25519 verify), DATA
into a slot (streaming SHA-256, flash writes), END (read-back), ACTIVATE, REBOOT, trial boot of the
bundle, CONFIRM. The agent's memory hook (OTALINK_MEMTRACE, device/main.py) prints the live heap
after a collection following each message; the peak of those is reported. Prints a table and
writes build/bench/boards.json: {board: {heap_budget, fits_budget, peak_heap_bytes,
headroom_bytes, peak_heap_unbounded_bytes (when it does not fit), ...}}.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from otalink.host.deploy.profile import Board, load_board
from otalink.host.deploy.unixboard import UnixBoard

from tests.boards import _flow

ROOT = Path(__file__).resolve().parent.parent
_MEM = re.compile(rb"mem (\d+) after type|peak_live=(\d+)")


def as_unix(board: Board, tmp: Path) -> Board:
    """The board's profile run on the unix port: same link, slots, geometry and heap budget."""
    raw: dict[str, Any] = json.loads(json.dumps(board.raw))
    raw["port"] = "unix"
    raw["micropython"]["arch"] = "x64"
    raw["uart"].update({"kind": "pty", "id": None, "tx": None, "rx": None})
    region = raw["flash"]["region"]["size"]
    raw["flash"] = {
        "device": "nor-file",
        "path": "flash.bin",
        "size": region,
        "erase_size": raw["flash"]["erase_size"],
        "write_size": raw["flash"]["write_size"],
        "region": {"offset": 0, "size": region},
    }
    raw["firmware"] = None
    raw["updates"] = ["bundle"]
    raw["deploy"]["soft_reset"] = False
    folder = tmp / raw["name"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "board.json").write_text(json.dumps(raw))
    return load_board(folder / "board.json")


def run_update(
    board: Board, heap: int | None, image_kib: int, tmp: Path
) -> tuple[bool, int | None, float, str]:
    """(update completed, peak live heap, seconds, error) for one emulated board."""
    emu = as_unix(board, tmp / "profiles")
    flash = tmp / f"flash-{board.name}-{heap}"
    env = {"OTALINK_MEMTRACE": "1"}
    ok, seconds, error = False, 0.0, ""
    with UnixBoard(flash, heapsize=str(heap) if heap else None, env=env) as b:
        assert b.wait_boots(1, 10)
        try:
            d = _flow.deploy_agent(emu, b.port, ecu_id=f"{board.name}-ecu", hw_id="bench-hw")
            # The bundle fills part of the slot with incompressible data (an app payload).
            size = min(image_kib * 1024, board.slots.size - 4096)
            t0 = time.monotonic()
            info = _flow.update(d, b.uart_host, "1.2.3", 2, payload=size)
            seconds = time.monotonic() - t0
            ok = info["slots"][info["active_slot"]]["version"] == "1.2.3"  # type: ignore[index]
        except Exception as exc:
            error = str(exc).splitlines()[0][:120]
            if b"MemoryError" in b.output():
                error = "MemoryError"
        time.sleep(0.3)
        out = b.output()
    peaks = [int(m.group(1) or m.group(2)) for m in _MEM.finditer(out)]
    return ok, (max(peaks) if peaks else None), seconds, error


def measure(name: str, image_kib: int, tmp: Path) -> dict[str, Any]:
    board = load_board(name)
    budget = board.heap_budget
    ok, peak, seconds, error = run_update(board, budget, image_kib, tmp)
    row: dict[str, Any] = {
        "board": name,
        "heap_budget": budget,
        "fits_budget": ok,
        "peak_heap_bytes": peak if ok else None,
        "headroom_bytes": budget - peak if ok and peak is not None else None,
        "error_at_budget": error or None,
        "image_kib": image_kib,
        "max_payload": board.link.max_payload,
        "window": board.link.window,
        "erase_size": board.flash.erase_size,
        "update_seconds": round(seconds, 2),
    }
    if not ok:
        # How much it needs: the same update with the unix port's default heap.
        ok2, peak2, seconds2, error2 = run_update(board, None, image_kib, tmp)
        row["peak_heap_unbounded_bytes"] = peak2 if ok2 else None
        row["update_seconds"] = round(seconds2, 2)
        if not ok2:
            row["error_unbounded"] = error2
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--boards", default="unix,esp32,rp2,stm32")
    ap.add_argument("--image-kib", type=int, default=64)
    args = ap.parse_args(argv)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-boards-") as td:
        for name in args.boards.split(","):
            rows.append(measure(name, args.image_kib, Path(td)))
    print(
        f"{'board':6s} {'heap budget':>11s} {'fits':>5s} {'peak heap':>10s} {'headroom':>9s} "
        f"{'needs (no limit)':>16s} {'frame':>6s} {'window':>7s}  note"
    )
    for r in rows:

        def cell(v: Any) -> str:
            return "-" if v is None else str(v)

        print(
            f"{r['board']:6s} {r['heap_budget']:>11d} {'yes' if r['fits_budget'] else 'NO':>5s} "
            f"{cell(r['peak_heap_bytes']):>10s} {cell(r['headroom_bytes']):>9s} "
            f"{cell(r.get('peak_heap_unbounded_bytes')):>16s} {r['max_payload']:>6d} "
            f"{r['window']:>7d}  {r.get('error_at_budget') or ''}"
        )
    out = ROOT / "build" / "bench" / "boards.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({r["board"]: r for r in rows}, indent=2) + "\n")
    print(f"written {out.relative_to(ROOT)}")
    # Figures, not a pass/fail gate: exit 1 only when an update could not complete at all.
    return 0 if all(r["fits_budget"] or r.get("peak_heap_unbounded_bytes") for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
