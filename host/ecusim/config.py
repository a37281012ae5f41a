"""ECU config JSON for the device agent (schema: docs/device.md "ECU configuration")."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

#: Geometry used when a board profile has no "flash" section (mirrors device/flash.py DEFAULTS).
DEFAULT_FLASH: dict[str, Any] = {
    "device": "nor-file",
    "size": 1048576,
    "erase_size": 4096,
    "write_size": 256,
    "state_offset": 0,
    "state_sectors": 4,
    "slot_size": 393216,
    "slot_offsets": [65536, 458752],
}
DEFAULT_TRIAL_BOOTS = 3


def board_file(board: str) -> Path:
    """Path of ``boards/<board>/board.json`` (may not exist)."""
    return ROOT / "boards" / board / "board.json"


def board_profile(board: str = "unix") -> dict[str, Any]:
    """The board profile, or a minimal default one when the boards tree has none."""
    path = board_file(board)
    if path.is_file():
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError(f"{path}: not a JSON object")
        return data
    return {"name": board, "flash": dict(DEFAULT_FLASH), "trial_boots": DEFAULT_TRIAL_BOOTS}


def board_geometry(board: str = "unix", **overrides: Any) -> dict[str, Any]:
    """Flat flash geometry as the agent sees it (board "flash" + "slots" + trial_boots)."""
    prof = board_profile(board)
    g: dict[str, Any] = dict(DEFAULT_FLASH)
    g.update(prof.get("flash") or {})
    slots = prof.get("slots") or {}
    if "size" in slots:
        g["slot_size"] = slots["size"]
    if "offsets" in slots:
        g["slot_offsets"] = slots["offsets"]
    for k in ("state_offset", "state_sectors"):
        if k in slots:
            g[k] = slots[k]
    g["trial_boots"] = prof.get("trial_boots", DEFAULT_TRIAL_BOOTS)
    g.update(overrides)
    return g


def _hex(value: bytes | str, size: int, what: str) -> str:
    raw = bytes.fromhex(value) if isinstance(value, str) else bytes(value)
    if len(raw) != size:
        raise ValueError(f"{what}: {size} bytes expected, got {len(raw)}")
    return raw.hex()


def make_ecu_config(
    ecu_id: str,
    hw_id: str,
    director_pubkeys: list[bytes] | list[str],
    ecu_seed: bytes | str,
    flash_path: str | os.PathLike[str],
    line_path: str | os.PathLike[str] | None,
    board: str = "unix",
    *,
    threshold: int = 1,
    flash: dict[str, Any] | None = None,
    bundle_dir: str | os.PathLike[str] | None = None,
    trial_boots: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The agent's config: identity, keys, line, flash (path + overrides), board profile.

    ``flash`` overrides geometry keys or arms the emulator (``cut_after``, ``tear``,
    ``cut_mode``); ``extra`` goes to the top level (``run_ms``, ``idle_ms``, ``max_payload``,
    ``window``, ``time_floor``, ...).
    """
    cfg: dict[str, Any] = {
        "ecu_id": ecu_id,
        "hw_id": hw_id,
        "ecu_seed": _hex(ecu_seed, 32, "ecu_seed"),
        "director_keys": [_hex(k, 32, "director key") for k in director_pubkeys],
        "director_threshold": threshold,
    }
    bf = board_file(board)
    if bf.is_file():
        cfg["board_path"] = str(bf)
    else:
        cfg["board"] = board_profile(board)
    if line_path is not None:
        cfg["line"] = {"path": str(line_path)}
    fl: dict[str, Any] = {"path": str(Path(flash_path).resolve())}
    fl.update(flash or {})
    if trial_boots is not None:
        fl["trial_boots"] = trial_boots
    cfg["flash"] = fl
    if bundle_dir is not None:
        cfg["bundle_dir"] = str(bundle_dir)
    cfg.update(extra)
    return cfg


def write_ecu_config(config: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``config`` as JSON atomically (temp + fsync + rename); returns the path."""
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".ecu-", suffix=".json", dir=dest.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(config, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest
