"""protocol/ and device/ import only what MicroPython has (and never the host).

Walks every import statement (ast) in protocol/ and device/. Imports inside an
``except ImportError`` handler are the CPython fallback of a try/except and are not checked.
A second test asks the real ``micropython`` binary to import every non-board module used.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

from tests.mpyrun import _micropython

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("protocol", "device")

# Modules of MicroPython (unix port and the board ports); u-prefixed aliases included.
MICROPYTHON_MODULES = {
    "micropython", "sys", "os", "time", "struct", "binascii", "hashlib", "deflate", "io",
    "select", "termios", "errno", "gc", "json", "array", "random", "collections", "math",
    "asyncio", "uctypes", "builtins", "re", "heapq", "platform", "vfs", "_thread", "cryptolib",
    "machine", "esp32", "esp", "rp2", "pyb", "stm", "network", "neopixel", "btree",
}  # fmt: skip
MICROPYTHON_MODULES |= {"u" + m for m in ("os", "time", "struct", "binascii", "hashlib", "io",
                                          "select", "errno", "json", "array", "random",
                                          "collections", "asyncio", "ctypes", "re", "heapq",
                                          "platform")}  # fmt: skip
BOARD_ONLY = {"machine", "esp32", "esp", "rp2", "pyb", "stm", "network", "neopixel", "btree"}
# Which otalink packages each folder may import (imports flow device -> protocol <- host).
ALLOWED_OTALINK = {
    "protocol": ("otalink.protocol",),
    "device": ("otalink.protocol", "otalink.device"),
}


def _guarded(tree: ast.AST) -> set[int]:
    """ids of import nodes inside `except ImportError` handlers."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ExceptHandler) and node.type is not None:
            names = {n.id for n in ast.walk(node.type) if isinstance(n, ast.Name)}
            if names & {"ImportError", "ModuleNotFoundError"}:
                for sub in ast.walk(node):
                    if isinstance(sub, (ast.Import, ast.ImportFrom)):
                        skip.add(id(sub))
    return skip


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every checked import in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skip = _guarded(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                continue  # relative: stays inside its own package
            assert node.module is not None
            found.append((node.lineno, node.module))
    return found


def _files() -> list[Path]:
    return [p for d in SOURCES for p in sorted((ROOT / d).rglob("*.py"))]


def violations(folder: str, path: Path) -> list[str]:
    bad = []
    for line, mod in imports_of(path):
        top = mod.split(".")[0]
        where = f"{path}:{line}"
        if top == "otalink":
            if not mod.startswith(ALLOWED_OTALINK[folder]):
                bad.append(f"{where} imports {mod} (imports flow device -> protocol <- host)")
        elif top not in MICROPYTHON_MODULES:
            bad.append(f"{where} imports {mod}, which MicroPython lacks")
    return bad


def test_sources_exist() -> None:
    names = {p.name for p in _files()}
    assert {"cbor.py", "frame.py", "messages.py", "transfer.py", "codes.py"} <= names


@pytest.mark.parametrize("folder", SOURCES)
def test_only_micropython_imports(folder: str) -> None:
    bad = [v for p in sorted((ROOT / folder).rglob("*.py")) for v in violations(folder, p)]
    assert not bad, "\n".join(bad)


def test_walker_catches_forbidden_imports(tmp_path: Path) -> None:
    src = tmp_path / "x.py"
    src.write_text(
        "import typing\nfrom dataclasses import dataclass\nimport otalink.host.cli\n"
        "try:\n    from micropython import const\nexcept ImportError:\n    import enum\n"
        "def f():\n    import logging\n"
    )
    mods = [m for _, m in imports_of(src)]
    assert mods == ["typing", "dataclasses", "otalink.host.cli", "micropython", "logging"]
    found = violations("protocol", src)
    assert len(found) == 4, found
    assert len(violations("device", src)) == 4


def test_modules_exist_in_micropython() -> None:
    used = sorted(
        {
            m.split(".")[0]
            for p in _files()
            for _, m in imports_of(p)
            if m.split(".")[0] not in BOARD_ONLY and m.split(".")[0] != "otalink"
        }
    )
    script = "".join(f"import {m}\n" for m in used) + "print('ok')\n"
    proc = subprocess.run([_micropython(), "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
