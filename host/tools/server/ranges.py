"""HTTP byte ranges (RFC 9110) and the numbers a client sends: ASCII digits only, bounded."""

from __future__ import annotations

import re

_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)", re.ASCII)
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_HUGE = 10**18  # any number with more digits than this is "more than any file has"


def ascii_uint(text: str) -> int | None:
    """A decimal number of ASCII digits (``None`` otherwise: no sign, no ``_``, no Unicode
    digits such as ``²``); values past 10**18 are 10**18 — more than any file or body here, and
    never a 4300-digit ``int()``."""
    text = text.strip()
    if not _DIGITS.fullmatch(text):
        return None
    text = text.lstrip("0") or "0"
    return int(text) if len(text) <= 18 else _HUGE


def parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """(first, last) of a single byte range; ``None`` to serve the whole file; ``"416"`` if
    unsatisfiable."""
    header = header.strip()
    if "," in header:
        return None  # several ranges: whole file
    m = _RANGE.fullmatch(header)
    if not m or (not m.group(1) and not m.group(2)):
        return None  # malformed: ignore the header
    if not m.group(1):  # suffix range: last n bytes
        n = ascii_uint(m.group(2)) or 0
        if n == 0:
            return "416"
        return (max(0, size - n), size - 1) if size else "416"
    first = ascii_uint(m.group(1)) or 0
    if first >= size:
        return "416"
    last = ascii_uint(m.group(2)) if m.group(2) else size - 1
    if last is None or last < first:
        return None
    return first, min(last, size - 1)
