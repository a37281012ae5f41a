"""The Server-Sent Events stream of the agent's event log.

Each event is one SSE message: ``id: N`` and ``data: {"id", "ts", "type", "data"}`` (JSON, one
line). There is no ``event:`` field, so a browser's ``EventSource.onmessage`` sees every type.
A client reconnecting with ``Last-Event-ID: N`` (or ``?since=N``) first receives every event
after N still held by the log, then the live ones. ``?follow=false`` ends the stream after the
replay (used by ``otalink events`` without ``--follow`` and by tests). A comment line is sent
every ``KEEPALIVE_S`` so proxies and clients see the connection is alive.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from otalink.host.gateway.campaign.events import EventLog, EventRecord
from starlette.requests import Request
from starlette.responses import StreamingResponse

KEEPALIVE_S = 10.0
POLL_S = 0.05
RETRY_MS = 1000


def format_event(ev: EventRecord) -> bytes:
    """One SSE message for an event record."""
    data = json.dumps(ev, separators=(",", ":"), default=str, ensure_ascii=False)
    return f"id: {int(ev['id'])}\ndata: {data}\n\n".encode()


async def _stream(
    request: Request, log: EventLog, since: int, follow: bool
) -> AsyncIterator[bytes]:
    yield f"retry: {RETRY_MS}\n\n".encode()
    if not follow:
        for ev in log.since(since):
            yield format_event(ev)
        return
    sub = log.subscribe(since)
    try:
        last_sent = time.monotonic()
        while True:
            live = sub.get(timeout=0)
            if live is not None:
                yield format_event(live)
                last_sent = time.monotonic()
                continue
            if await request.is_disconnected():
                return
            if time.monotonic() - last_sent > KEEPALIVE_S:
                yield b": keepalive\n\n"
                last_sent = time.monotonic()
            await asyncio.sleep(POLL_S)
    finally:
        sub.close()


def event_stream_response(
    request: Request, log: EventLog, since: int | None, *, follow: bool = True
) -> StreamingResponse:
    """``text/event-stream`` response replaying after ``since`` (None: only new events)."""
    start = log.last_id if since is None else since
    return StreamingResponse(
        _stream(request, log, start, follow),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
