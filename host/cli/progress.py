"""The one progress renderer of the CLI: a text bar, and a transfer line drawn in place."""

from __future__ import annotations

import sys
import time

BAR_WIDTH = 30


def bar(percent: float, width: int = BAR_WIDTH) -> str:
    """``[########--------]  50.0 %`` for a percentage (clamped to 0..100)."""
    p = max(0.0, min(100.0, percent))
    full = round(width * p / 100)
    return "[" + "#" * full + "-" * (width - full) + f"] {p:5.1f} %"


def transfer(done: int, total: int, started: float, width: int = 40) -> None:
    """Redraw ``bar  rate KiB/s`` of a transfer on stderr; a newline once it is complete."""
    percent = 100.0 * done / total if total else 100.0
    rate = done / max(1e-6, time.monotonic() - started) / 1024
    sys.stderr.write(f"\r{bar(percent, width)} {rate:7.1f} KiB/s")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()
