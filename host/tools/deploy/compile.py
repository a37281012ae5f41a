"""mpy-cross staging of protocol/ + device/ for one board architecture.

Public interface (stable):
    compile_tree(arch: str, out: Path | None = None) -> dict[str, bytes]
        relative path on the board under the lib dir ("otalink/device/main.mpy") -> .mpy bytes
    collect_tree(dest: Path) -> dict[str, bytes]      the same from an existing staging tree
    mpy_header(data: bytes) -> tuple[int, int, int]   (version, sub-version, arch code)
    MPY_CROSS_VERSION: int = 6

Compilation is delegated to ``tools/build_mpy.py --out DIR --arch ARCH``
(the same staging as ``make mpy``), into ``build/deploy/<arch>``.
"""

from __future__ import annotations

import fcntl
import hashlib
import subprocess
import sys
from pathlib import Path

from otalink.host.tools.deploy.errors import CompileError

MPY_CROSS_VERSION = 6
ROOT = Path(__file__).resolve().parents[3]


def mpy_header(data: bytes) -> tuple[int, int, int]:
    """(version, sub-version, arch code) from a .mpy header: b"M", ver, flags, small-int bits."""
    if len(data) < 4 or data[0:1] != b"M":
        raise CompileError("not an .mpy file")
    return data[1], data[2] & 3, data[2] >> 2


def compile_tree(arch: str, out: Path | None = None) -> dict[str, bytes]:
    """Compile the agent for ``arch``; every .mpy keyed by its path under the board's lib dir."""
    tool = ROOT / "tools" / "build_mpy.py"
    if not tool.is_file():
        raise CompileError(f"{tool} is missing (deploy runs from a source checkout)")
    dest = out or ROOT / "build" / "deploy" / arch
    dest.mkdir(parents=True, exist_ok=True)
    # One build per staging folder at a time (parallel deploys/tests share it).
    with open(dest.parent / f".{arch}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build(arch, tool, dest)


def _build(arch: str, tool: Path, dest: Path) -> dict[str, bytes]:
    stamp = dest / ".sources.sha256"
    digest = _sources_digest(arch, tool)
    if stamp.is_file() and stamp.read_text() == digest:
        return collect_tree(dest)
    proc = subprocess.run(
        [sys.executable, str(tool), "--out", str(dest), "--arch", arch],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise CompileError(f"mpy-cross failed for {arch}:\n{proc.stdout}{proc.stderr}")
    files = collect_tree(dest)
    stamp.write_text(digest)
    return files


def _sources_digest(arch: str, tool: Path) -> str:
    # Everything the staging depends on: sources, the build tool, the arch, mpy-cross itself.
    h = hashlib.sha256(arch.encode())
    paths = [
        tool,
        *sorted((ROOT / "protocol").rglob("*.py")),
        *sorted((ROOT / "device").rglob("*.py")),
    ]
    exe = Path(sys.executable).parent / "mpy-cross"
    if exe.exists():
        paths.append(exe)
    for path in paths:
        if "__pycache__" in path.parts:
            continue
        h.update(str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path).encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def collect_tree(dest: Path) -> dict[str, bytes]:
    """The .mpy files of a staging tree (``<dest>/otalink/**.mpy``) by board lib path."""
    files: dict[str, bytes] = {}
    for path in sorted((dest / "otalink").rglob("*.mpy")):
        files[path.relative_to(dest).as_posix()] = path.read_bytes()
    if not any(p.startswith("otalink/device/") for p in files):
        raise CompileError(f"nothing compiled under {dest}/otalink/device")
    return files
