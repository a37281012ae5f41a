"""ECU config JSON for the device agent (schema: docs/device.md "ECU configuration").

The ECU config is a JSON document the agent reads (a JSON edge: ``make_ecu_config`` builds it,
callers add top-level keys); its ``flash`` section and the geometry a board gives the agent are
typed (``FlashGeometry``), read from the validated board profile model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TypedDict, Unpack

from otalink.host.fsutil import write_json
from otalink.host.gateway.ecu.commands import dev_command_key
from otalink.host.tools.deploy.profile import load_board
from pydantic import JsonValue

ROOT = Path(__file__).resolve().parents[3]


class Region(TypedDict):
    """otalink's area inside the block device."""

    offset: int
    size: int


class FlashGeometry(TypedDict, total=False):
    """The flat flash geometry the agent sees (device/flashcfg.py DEFAULTS keys: the board's
    "flash" and "slots" sections plus trial_boots), and the emulator's knobs (``path``,
    ``cut_after``, ``tear``, ``cut_mode``, ``erase_ms``: device/flash.py)."""

    device: str
    size: int
    erase_size: int
    write_size: int
    region: Region
    region_offset: int
    label: str
    path: str
    deflate_wbits: int
    state_offset: int
    state_sectors: int
    slot_size: int
    slot_offsets: list[int]
    trial_boots: int
    cut_after: int
    tear: bool
    cut_mode: str
    erase_ms: int


#: Geometry used when a board profile has no "flash" section (mirrors device/flash.py DEFAULTS).
DEFAULT_FLASH: FlashGeometry = {
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


def board_profile(board: str = "unix") -> dict[str, JsonValue]:
    """The board profile as JSON (read and validated by the one profile loader,
    ``tools.deploy.profile.load_board``), or a minimal default one when the boards tree has none."""
    path = board_file(board)
    if path.is_file():
        return load_board(path).raw
    flash: dict[str, JsonValue] = json.loads(json.dumps(DEFAULT_FLASH))  # a copy, as JSON
    return {"name": board, "flash": flash, "trial_boots": DEFAULT_TRIAL_BOOTS}


def board_geometry(board: str = "unix", **overrides: Unpack[FlashGeometry]) -> FlashGeometry:
    """Flat flash geometry as the agent sees it (board "flash" + "slots" + trial_boots), from
    the validated profile (the defaults when the boards tree has none)."""
    g = DEFAULT_FLASH.copy()
    g["slot_offsets"] = list(DEFAULT_FLASH["slot_offsets"])
    g["trial_boots"] = DEFAULT_TRIAL_BOOTS
    path = board_file(board)
    if path.is_file():
        prof = load_board(path)
        f, slots = prof.flash, prof.slots
        g["device"] = f.device
        g["size"], g["erase_size"], g["write_size"] = f.size, f.erase_size, f.write_size
        g["region"] = {"offset": f.region.offset, "size": f.region.size}
        if f.label is not None:
            g["label"] = f.label
        if f.path is not None:
            g["path"] = f.path
        if f.deflate_wbits is not None:
            g["deflate_wbits"] = f.deflate_wbits
        g["slot_size"], g["slot_offsets"] = slots.size, list(slots.offsets)
        g["state_offset"], g["state_sectors"] = slots.state_offset, slots.state_sectors
        g["trial_boots"] = prof.trial_boots
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
    flash: FlashGeometry | None = None,
    bundle_dir: str | os.PathLike[str] | None = None,
    trial_boots: int | None = None,
    command_keys: list[bytes] | list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The agent's config: identity, keys, line, flash (path + overrides), board profile.

    ``command_keys``: public keys the ECU trusts for signed commands (ACTIVATE, REBOOT, CONFIRM,
    REVERT, ABORT); None = the development command key (``otalink.host.keys.DEV_COMMAND_SEED``),
    ``[]`` = none (every command refused with E_CMD_AUTH).

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
    if command_keys is None:
        command_keys = [dev_command_key().public]
    cfg["command_keys"] = [_hex(k, 32, "command key") for k in command_keys]
    bf = board_file(board)
    if bf.is_file():
        cfg["board_path"] = str(bf)
    else:
        cfg["board"] = board_profile(board)
    if line_path is not None:
        cfg["line"] = {"path": str(line_path)}
    fl: FlashGeometry = {"path": str(Path(flash_path).resolve())}
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
    write_json(dest, config)
    return dest
