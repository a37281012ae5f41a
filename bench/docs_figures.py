"""Refresh the figures committed in docs/ from the latest build outputs (``make docs-figures``).

    python -m bench.docs_figures [--root DIR]

Copies, when present:
* build/bench/benchmarks.md -> docs/benchmarks.md (its chart link pointed at docs/img/);
* build/bench/bench_line.png -> docs/img/bench_line.png;
* test-artifacts/docs-img/*.png (the screenshots the browser tests set aside for the README)
  -> docs/img/.

``make bench`` and ``make test`` never write docs/; this is the one step that does, run on
purpose before committing the figures. Exit status 1 when there was nothing to copy.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def refresh(root: Path) -> list[Path]:
    """Copy what exists; the docs/ paths written."""
    docs = root / "docs"
    img = docs / "img"
    written: list[Path] = []
    md = root / "build" / "bench" / "benchmarks.md"
    if md.is_file():
        text = md.read_text().replace("](bench_line.png)", "](img/bench_line.png)")
        docs.mkdir(parents=True, exist_ok=True)
        (docs / "benchmarks.md").write_text(text)
        written.append(docs / "benchmarks.md")
    pngs = [root / "build" / "bench" / "bench_line.png"]
    pngs += sorted((root / "test-artifacts" / "docs-img").glob("*.png"))
    for src in pngs:
        if src.is_file():
            img.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, img / src.name)
            written.append(img / src.name)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--root", type=Path, default=ROOT)
    args = ap.parse_args(argv)
    written = refresh(args.root)
    for p in written:
        print(f"updated {p.relative_to(args.root)}")
    if not written:
        print("nothing to copy: run `make bench` (build/bench/) or the browser tests "
              "(test-artifacts/docs-img/) first", file=sys.stderr)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
