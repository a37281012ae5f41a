"""Write the JSON schemas generated from the host's pydantic models (``make schemas``).

boards/board.schema.json comes from ``otalink.host.tools.deploy.profile.Board``;
tests/tools/deploy/test_profiles.py fails while the committed file differs from it.
``--check`` writes nothing and exits 1 when a file is out of date.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from otalink.host.tools.deploy.profile import board_schema

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS: dict[str, Callable[[], str]] = {"boards/board.schema.json": board_schema}


def main(argv: list[str]) -> int:
    stale = []
    for rel, make in SCHEMAS.items():
        path, text = ROOT / rel, make()
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(rel)
        if "--check" not in argv:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {rel}")
    if "--check" in argv and stale:
        print("out of date (run make schemas): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
