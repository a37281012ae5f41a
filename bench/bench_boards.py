"""Memory budget per board profile, measured on the MicroPython unix port (figures, not a test).

    python -m bench.bench_boards [--boards unix,esp32,rp2,stm32] [--image-kib N]
                                 [--link MAX_PAYLOAD:WINDOW]

For each profile: an emulated board (the unix port on a pty REPL) gets the agent through
``otalink device deploy`` (mpremote, .mpy files loaded from the board's filesystem, as on a real
board without freezing), with the profile's link window, frame size and flash geometry; then one
full update over its line: HELLO, BEGIN (ed25519 verify), DATA into a slot (streaming SHA-256,
flash writes), END (read-back), ACTIVATE, REBOOT, trial boot of the bundle, CONFIRM.

``-X heapsize=`` is the agent's part of the board's heap budget (bench/profiles.py): the budget,
minus the UART ring buffers on the ports where ``machine.UART`` allocates them on the MicroPython
heap (rp2, stm32). ``--link`` tries another frame size and window (and the ``uart.rxbuf`` that
window needs, ``rxbuf_needed``) on every board given: what a board's RAM allows.

The agent's memory hook (OTALINK_MEMTRACE, device/main.py) prints the live heap after a
collection, after each message and inside requests (BEGIN's verification, report signing); the
peak of all of them is reported (bench/memtrace.py). Prints a table and writes
build/bench/boards.json: {board: {heap_budget, agent_heap, uart_heap_bytes, fits_budget,
peak_heap_bytes, peak_where, headroom_bytes, peak_heap_unbounded_bytes and needs_budget_bytes
(when it does not fit), ...}}.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from otalink.host.sim.unixboard import UnixBoard
from otalink.host.tools.deploy.profile import Board, load_board, rxbuf_needed

from bench import memtrace, profiles
from tests.tools.deploy import _flow

ROOT = Path(__file__).resolve().parent.parent


def with_link(board: Board, max_payload: int, window: int, tmp: Path) -> Board:
    """The profile with another frame size and window, and the UART buffer that window needs."""
    raw: dict[str, Any] = json.loads(json.dumps(board.raw))
    raw["link"] = {"max_payload": max_payload, "window": window}
    raw["uart"]["rxbuf"] = rxbuf_needed(max_payload, window)  # the least that window needs
    folder = tmp / f"{max_payload}-{window}" / raw["name"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "board.json").write_text(json.dumps(raw))
    return load_board(folder / "board.json")


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
) -> tuple[bool, memtrace.MemTrace, float, str]:
    """(update completed, the agent's memory trace, seconds, error) for one emulated board."""
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
    return ok, memtrace.parse(out), seconds, error


def min_heap(board: Board, image_kib: int, tmp: Path, lo_kib: int, hi_kib: int) -> int | None:
    """The least heap (KiB steps, bytes) in [lo, hi] the whole update completes under."""
    if not run_update(board, hi_kib * 1024, image_kib, tmp)[0]:
        return None
    while lo_kib < hi_kib:
        mid = (lo_kib + hi_kib) // 2
        if run_update(board, mid * 1024, image_kib, tmp)[0]:
            hi_kib = mid
        else:
            lo_kib = mid + 1
    return hi_kib * 1024


def measure(
    name: str, image_kib: int, tmp: Path, link: tuple[int, int] | None = None
) -> dict[str, Any]:
    board = load_board(name)
    if link is not None:
        board = with_link(board, link[0], link[1], tmp / "links")
    budget = board.heap_budget
    heap = profiles.agent_heap(board)
    ok, mem, seconds, error = run_update(board, heap, image_kib, tmp)
    peak = mem.peak
    row: dict[str, Any] = {
        "board": name,
        "link_variant": link is not None,
        "heap_budget": budget,
        "agent_heap": heap,
        "uart_heap_bytes": budget - heap,
        "fits_budget": ok,
        "peak_heap_bytes": peak if ok else None,
        "peak_where": mem.where if ok else None,
        "peak_between_messages_bytes": mem.peak_between if ok else None,
        "headroom_bytes": heap - peak if ok and peak is not None else None,
        "error_at_budget": error or None,
        "image_kib": image_kib,
        "max_payload": board.link.max_payload,
        "window": board.link.window,
        "rxbuf": board.uart.rxbuf,
        "erase_size": board.flash.erase_size,
        "update_seconds": round(seconds, 2),
    }
    if not ok:
        # How much it needs: the same update with the unix port's default heap.
        ok2, mem2, seconds2, error2 = run_update(board, None, image_kib, tmp)
        row["peak_heap_unbounded_bytes"] = mem2.peak if ok2 else None
        row["peak_where_unbounded"] = mem2.where if ok2 else None
        if ok2 and mem2.peak is not None:
            # The least -X heapsize (1 KiB steps) the update completes under: the live peak plus
            # what first-fit fragmentation costs; with the UART buffers, the budget it needs.
            least = min_heap(board, image_kib, tmp, mem2.peak // 1024 + 1, heap // 1024 + 24)
            row["min_agent_heap_bytes"] = least
            row["needs_budget_bytes"] = least + (budget - heap) if least else None
        row["update_seconds"] = round(seconds2, 2)
        if not ok2:
            row["error_unbounded"] = error2
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--boards", default="unix,esp32,rp2,stm32")
    ap.add_argument("--image-kib", type=int, default=64)
    ap.add_argument("--link", help="MAX_PAYLOAD:WINDOW instead of each profile's own")
    args = ap.parse_args(argv)
    link = tuple(int(x) for x in args.link.split(":")) if args.link else None
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-boards-") as td:
        for name in args.boards.split(","):
            rows.append(measure(name, args.image_kib, Path(td), link))  # type: ignore[arg-type]
    print(
        f"{'board':6s} {'heap budget':>11s} {'agent heap':>10s} {'fits':>5s} {'peak heap':>10s} "
        f"{'headroom':>9s} {'needs (no limit)':>16s} {'frame':>6s} {'window':>7s}  note"
    )
    for r in rows:

        def cell(v: Any) -> str:
            return "-" if v is None else str(v)

        print(
            f"{r['board']:6s} {r['heap_budget']:>11d} {r['agent_heap']:>10d} "
            f"{'yes' if r['fits_budget'] else 'NO':>5s} "
            f"{cell(r['peak_heap_bytes']):>10s} {cell(r['headroom_bytes']):>9s} "
            f"{cell(r.get('peak_heap_unbounded_bytes')):>16s} {r['max_payload']:>6d} "
            f"{r['window']:>7d}  {r.get('error_at_budget') or ''}"
        )
    suffix = f"-{link[0]}-{link[1]}" if link else ""
    out = ROOT / "build" / "bench" / f"boards{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({r["board"]: r for r in rows}, indent=2) + "\n")
    print(f"written {out.relative_to(ROOT)}")
    # Figures, not a pass/fail gate: exit 1 only when an update could not complete at all.
    return 0 if all(r["fits_budget"] or r.get("peak_heap_unbounded_bytes") for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
