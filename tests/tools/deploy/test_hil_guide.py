"""docs/hil.md runs as written: its shell blocks, copied from the file as they stand, against the
unix port as a board (a new user's bench path), so the guide cannot drift from the tools.

A block preceded by ``<!-- doc-test: skip (reason) -->`` is not run (it needs hardware, a
toolchain or builds the venv); every other ``sh`` block runs, in order, in one ``bash -e``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from otalink.host.keys import load_public_key

ROOT = Path(__file__).resolve().parents[3]
GUIDE = ROOT / "docs" / "hil.md"
SKIP = "<!-- doc-test: skip"
_FENCE = re.compile(r"^```sh\n(.*?)^```$", re.S | re.M)


def shell_blocks(text: str) -> list[tuple[str, bool]]:
    """Every ```sh block of ``text`` and whether it is marked skip."""
    out = []
    for m in _FENCE.finditer(text):
        before = text[: m.start()].rstrip().rsplit("\n", 1)[-1]
        out.append((m.group(1), before.startswith(SKIP)))
    return out


def test_shell_blocks_parser() -> None:
    text = "a\n<!-- doc-test: skip (x) -->\n```sh\nmake dev\n```\n\n```sh\necho 1\necho 2\n```\n"
    assert shell_blocks(text) == [("make dev\n", True), ("echo 1\necho 2\n", False)]


def _stop_board(root: Path) -> None:
    # If the guide failed half-way, the board it started in the background must not outlive us.
    try:
        pid = int(json.loads((root / "board_wiring.json").read_text())["pid"])
        if b"unixboard" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"):
            os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError, KeyError):
        pass


def test_hil_guide_runs_as_written(tmp_path: Path) -> None:
    blocks = shell_blocks(GUIDE.read_text())
    run = [b for b, skip in blocks if not skip]
    script = "\n".join(run)
    # The guide's bench path is all there: the emulated board, keys, deploy, flash, power off.
    for step in ("unixboard", "repo keygen", "device provision", "device deploy", "otalink flash",
                 "command reboot", "command confirm", "--app", "--stop"):  # fmt: skip
        assert step in script, f"docs/hil.md no longer runs `{step}` on the unix board"
    # A fresh clone's root, as the user has it: the venv at .venv, nothing else; no ECU keys yet.
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTALINK_KEYS")}
    env["HOME"] = str(tmp_path / "home")
    board_root = tmp_path / "build" / "hil" / "board"
    try:
        r = subprocess.run(
            ["bash", "-euo", "pipefail", "-x", "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        _stop_board(board_root)
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-6000:]
    assert "agent answers HELLO as bms-1 / bms-hw" in r.stdout, log[-4000:]
    # flash: verified and activated, and on the unpaced emulated line no line-rate ratio.
    flashed = [ln for ln in r.stdout.splitlines() if "bytes verified" in ln]
    assert len(flashed) == 1 and "activated" in flashed[0] and "unpaced" in flashed[0], flashed
    assert "goodput/line rate" not in flashed[0]
    assert re.search(r"slot 1: pending\s+version 1\.1\.0\b", r.stdout), r.stdout[-3000:]
    # Reset into it, trial boot, confirmed: the whole update by the guide's commands.
    assert "bms-1: reboot accepted" in r.stdout and "bms-1: confirm accepted" in r.stdout
    assert re.search(r"boot normal\s+active slot 1", r.stdout), r.stdout[-3000:]
    assert re.search(r"slot 1: confirmed\s+version 1\.1\.0\b", r.stdout), r.stdout[-3000:]
    assert r.stdout.count("signature valid") == 3  # every info checked against the record
    # deploy --app: the application beside the agent, installed as a signed update, confirmed
    assert "application 2.0.0 installed and confirmed" in r.stdout, log[-4000:]
    # The board got the keys the guide made: the command key in its config, the Director key.
    keys = tmp_path / "build" / "hil" / "keys"
    cfg = json.loads((board_root / "otalink.json").read_text())
    assert cfg["command_keys"] == [load_public_key(keys / "command.pub").hex()]
    assert (board_root / "keys" / "director_keys.bin").read_bytes() == load_public_key(
        keys / "director.key"
    )
    assert (tmp_path / "home" / ".otalink" / "ecu-keys" / "bms-1.seed").is_file()
    assert "powered off" in r.stdout
