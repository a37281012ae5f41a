"""Append-only event log with monotonically increasing ids (SSE replay after reconnect).

Events are kept in memory (bounded ring) and appended to ``events.jsonl`` in the state dir, so
ids keep increasing across agent restarts and a client reconnecting with ``Last-Event-ID`` gets
what it missed. Progress events are frequent and not fsynced; state events are.
"""

from __future__ import annotations

import json
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from otalink.host.fsutil import write_atomic
from pydantic import JsonValue
from typing_extensions import TypedDict

RING = 2000  # events kept in memory for replay
FILE_MAX = 4 * 1024 * 1024  # events.jsonl is truncated to its tail beyond this


class EventRecord(TypedDict):
    """One event as the log keeps it, the SSE stream sends it and ``events.jsonl`` stores it."""

    id: int
    ts: float
    type: str
    data: dict[str, JsonValue]


Listener = Callable[[EventRecord], None]


def _record(ev: object) -> EventRecord | None:
    """A stored line as an event record (None for anything else)."""
    if not isinstance(ev, dict):
        return None
    eid, ts, typ, data = ev.get("id"), ev.get("ts"), ev.get("type"), ev.get("data")
    if not isinstance(eid, int) or isinstance(eid, bool) or not isinstance(typ, str):
        return None
    if not isinstance(ts, int | float) or not isinstance(data, dict):
        return None
    return {"id": eid, "ts": float(ts), "type": typ, "data": data}


class Subscription:
    """A live queue of events after ``since_id``; iterate it or call ``get``."""

    def __init__(self, log: EventLog, backlog: list[EventRecord]) -> None:
        self._log = log
        self._q: queue.Queue[EventRecord] = queue.Queue()
        for ev in backlog:
            self._q.put(ev)
        self.closed = False

    def _push(self, ev: EventRecord) -> None:
        self._q.put(ev)

    def get(self, timeout: float | None = None) -> EventRecord | None:
        """The next event, or None after ``timeout`` seconds without one."""
        try:
            return self._q.get(timeout=timeout)
        except queue.Empty:
            return None

    def __iter__(self) -> Iterator[EventRecord]:
        while not self.closed:
            ev = self.get(timeout=0.5)
            if ev is not None:
                yield ev

    def close(self) -> None:
        """Stop receiving events."""
        self.closed = True
        self._log._unsubscribe(self)


class EventLog:
    """Thread-safe append-only log: ``{id, ts, type, data}`` records."""

    def __init__(self, path: Path | None, clock_now: Callable[[], float]) -> None:
        self._path = path
        self._now = clock_now
        self._lock = threading.Lock()
        self._ring: deque[EventRecord] = deque(maxlen=RING)
        self._subs: list[Subscription] = []
        self._listeners: list[Listener] = []
        self._last_id = 0
        if path is not None and path.exists():
            self._load(path)

    def _load(self, path: Path) -> None:
        with path.open("rb+") as f:
            # a crash can leave a torn last line: cut it, or the next append would join it
            data = f.read()
            keep = data.rfind(b"\n") + 1
            if keep != len(data):
                f.truncate(keep)
        with path.open("rb") as f:
            for raw in f:
                try:
                    ev = json.loads(raw)
                except ValueError:
                    continue  # torn last line after a crash
                rec = _record(ev)
                if rec is not None:
                    self._ring.append(rec)
                    self._last_id = max(self._last_id, rec["id"])
        if path.stat().st_size > FILE_MAX:
            lines = (json.dumps(ev, separators=(",", ":")) + "\n" for ev in self._ring)
            write_atomic(path, "".join(lines).encode())

    @property
    def last_id(self) -> int:
        with self._lock:
            return self._last_id

    def append(
        self, type_: str, data: Mapping[str, JsonValue] | None = None, durable: bool = True
    ) -> int:
        """Record an event; returns its id."""
        with self._lock:
            self._last_id += 1
            new_id = self._last_id
            ev: EventRecord = {
                "id": self._last_id,
                "ts": self._now(),
                "type": type_,
                "data": dict(data or {}),
            }
            self._ring.append(ev)
            if self._path is not None:
                with self._path.open("a") as f:
                    f.write(json.dumps(ev, separators=(",", ":"), default=str) + "\n")
                    if durable:
                        f.flush()
                        os.fsync(f.fileno())
            subs = list(self._subs)
            listeners = list(self._listeners)
        for s in subs:
            s._push(ev)
        for fn in listeners:
            fn(ev)
        return new_id

    def add_listener(self, fn: Listener) -> None:
        """Call ``fn(event)`` synchronously, in the appending thread, after each append.

        The worker that appended waits for ``fn``: tests use it to act at an exact step of a
        campaign (no polling race); keep ``fn`` short and never let it raise."""
        with self._lock:
            self._listeners.append(fn)

    def since(self, since_id: int = 0) -> list[EventRecord]:
        """Events with id > ``since_id`` still held in memory."""
        with self._lock:
            return [ev for ev in self._ring if ev["id"] > since_id]

    def subscribe(self, since_id: int = 0) -> Subscription:
        """Replay the events after ``since_id``, then every new one."""
        with self._lock:
            backlog = [ev for ev in self._ring if ev["id"] > since_id]
            sub = Subscription(self, backlog)
            self._subs.append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)
