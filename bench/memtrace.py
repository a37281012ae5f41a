"""Read the agent's memory trace (ECU config ``"memtrace": true`` or OTALINK_MEMTRACE=1).

The agent (device/main.py, device/session.py) writes to stderr:

    otalink-mem start=N                 live heap once started, before serving the line
    otalink-mem live=N after type T     a new peak, sampled after handling a message of type T
    otalink-mem live=N in TAG           a new peak, sampled inside a request (device/memhook.py):
                                        TAG is "drop <module>", a lazily loaded group about to be
                                        forgotten with what the request built still live, e.g.
                                        BEGIN's instruction decode ("drop wire") and signature
                                        check ("drop auth"), report signing ("drop report")
    otalink-mem peak_live=N heap=H      at REBOOT/stop: the highest of all of the above, -X heap

Every figure is the live heap after a collection (``gc.mem_alloc()``), in bytes. A process that
is killed (not rebooted) never prints ``peak_live``, which is why the peak is the maximum over
all the lines, never a single line's value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE = re.compile(
    r"otalink-mem (?:start=(?P<start>\d+)"
    r"|live=(?P<live>\d+) (?:after type (?P<type>\d+)|in (?P<tag>[^\r\n]+))"
    r"|peak_live=(?P<peak>\d+) heap=(?P<heap>\d+))"
)


@dataclass(frozen=True)
class MemTrace:
    """What one agent's trace says (None where it said nothing)."""

    start: int | None  # live heap at the first start-up
    peak: int | None  # highest live heap of any line
    peak_between: int | None  # highest "after type" sample (between messages)
    peak_inside: int | None  # highest "in TAG" sample (inside a request)
    where: str | None  # the sample that set ``peak``: "after type 3", "in drop wire", ...
    heap: int | None  # the -X heapsize the agent reported
    samples: int


def parse(text: str | bytes) -> MemTrace:
    """Parse an agent's output (several boots may be concatenated)."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    start = peak = between = inside = heap = None
    where: str | None = None
    n = 0
    for m in _LINE.finditer(text):
        n += 1
        if m.group("start") is not None:
            v = int(m.group("start"))
            start = v if start is None else start
            label = "start"
        elif m.group("live") is not None:
            v = int(m.group("live"))
            if m.group("type") is not None:
                between = v if between is None else max(between, v)
                label = f"after type {m.group('type')}"
            else:
                inside = v if inside is None else max(inside, v)
                label = f"in {m.group('tag').strip()}"
        else:
            v = int(m.group("peak"))
            heap = int(m.group("heap"))
            label = "peak_live"
        if peak is None or v > peak:
            peak, where = v, label
    return MemTrace(start, peak, between, inside, where, heap, n)


def samples(text: str | bytes) -> list[tuple[str, int]]:
    """Every (label, live bytes) the trace holds, in order ("start", "after type 3", "in TAG")."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    out: list[tuple[str, int]] = []
    for m in _LINE.finditer(text):
        if m.group("start") is not None:
            out.append(("start", int(m.group("start"))))
        elif m.group("type") is not None:
            out.append((f"after type {m.group('type')}", int(m.group("live"))))
        elif m.group("tag") is not None:
            out.append((f"in {m.group('tag').strip()}", int(m.group("live"))))
        else:
            out.append(("peak_live", int(m.group("peak"))))
    return out
