"""The storage modules' private copies agree with each other and with what they stand for.

The device keeps values as private ``_NAME = const(value)`` copies (folded by mpy-cross: no name is
interned on the device) instead of importing a shared module, so the copies are checked here:
the ones of protocol/codes.py by tests/protocol/test_wire.py, the rest below.
"""

from __future__ import annotations

import ast
import re
import struct
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
DEVICE = ROOT / "device"
STORAGE = ("slots", "slotops", "store", "decide", "flash", "flashcfg", "boot", "bundle",
           "esp32ota", "slotbench")  # fmt: skip
_CONST = re.compile(r"^_([A-Z][A-Z0-9_]*) = const\(([^()]+)\)", re.M)  # (tuples: skipped)


def _consts(name: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for const, value in _CONST.findall((DEVICE / f"{name}.py").read_text()):
        # values are literals or expressions of earlier copies (1 << _SLOT_TRIAL)
        found[const] = eval(value, {}, {"_" + k: v for k, v in found.items()})
    return found


def test_private_copies_agree_across_storage_modules() -> None:
    seen: dict[str, tuple[str, int]] = {}
    checked = 0
    for mod in STORAGE:
        for name, value in _consts(mod).items():
            if name in seen:
                checked += 1
                assert seen[name][1] == value, (name, seen[name], (mod, value))
            else:
                seen[name] = (mod, value)
    assert checked >= 10, checked  # the check really compared copies (_BODY, _NO_SLOT, ...)


def test_record_size_is_the_struct_size() -> None:
    tree = ast.parse((DEVICE / "slots.py").read_text())
    rec = next(
        n.value
        for n in tree.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "REC"
    )
    fmt = eval(compile(ast.Expression(rec), "slots.py", "eval"), {})  # string literals only
    assert struct.calcsize(fmt) == _consts("slots")["BODY"] == _consts("store")["BODY"]


@pytest.mark.parametrize(("names", "module"), [("_OPS", "slotops"), ("_START", "decide")])
def test_slots_ops_are_the_modules_functions(names: str, module: str) -> None:
    # Slots.__getattr__ hands out exactly the public functions of slotops.py / decide.py
    tree = ast.parse((DEVICE / "slots.py").read_text())
    ops = next(
        ast.literal_eval(n.value.args[0] if isinstance(n.value, ast.Call) else n.value)
        for n in tree.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == names
    )
    public = {
        n.name
        for n in ast.parse((DEVICE / f"{module}.py").read_text()).body
        if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")
    }
    assert sorted(ops) == sorted(public)


def test_test_copies_of_boot_actions() -> None:
    decide = _consts("decide")
    text = (Path(__file__).parent / "mp_test_slots.py").read_text()
    copies = dict(re.findall(r"^(A_[A-Z_]+) = (\d+)$", text, re.M))
    assert copies, "mp_test_slots.py keeps A_RUN / A_START_TRIAL"
    for name, value in copies.items():
        assert decide[name] == int(value), name


def test_store_geometry_keys_are_the_defaults() -> None:
    # store.init merges a geometry over flashcfg.DEFAULTS only when one of these keys is missing
    store = ast.parse((DEVICE / "store.py").read_text())
    keys = next(
        ast.literal_eval(n.value.args[0])
        for n in store.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "_GEOM"
    )
    cfg = ast.parse((DEVICE / "flashcfg.py").read_text())
    defaults = next(
        n.value
        for n in cfg.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "DEFAULTS"
    )
    assert isinstance(defaults, ast.Dict)
    assert sorted(keys) == sorted(ast.literal_eval(k) for k in defaults.keys if k is not None)


def test_the_patch_path_pulls_deflate_steps_of_the_rings_size() -> None:
    # slotpatch.py pulls the decoder in store.py's steps against store.py's ring: a larger step
    # there would wait for a margin the ring cannot hold
    assert _consts("slotpatch")["STEP"] == _consts("store")["STEP"] == 128
    assert _consts("store")["PAGE"] == 256  # the default program unit: one NOR page
