"""Odd input to the local API, the same classes as the update server's (issue 10, defect 7):
numbers that are not ASCII numbers, and requests that never finish arriving. Every answer is a
clean 4xx, and a stalled or trickling client is cut after ``request_timeout_s`` while responses
(the event stream) are never cut."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from otalink.host.gateway.api.server import ApiServer
from otalink.host.sim.demo.stack import DemoStack

TIMEOUT = 1.0


@pytest.fixture
def quick_api(shared_stack: DemoStack) -> Iterator[ApiServer]:
    """A second API on the stack's agent, with a 1 s request deadline."""
    srv = ApiServer(shared_stack.agent, request_timeout_s=TIMEOUT).start()
    yield srv
    srv.stop()


def _closed_within(srv: ApiServer, data: bytes, within: float) -> tuple[bytes, float]:
    """Send ``data`` and wait until the server closes; (what it answered, seconds taken)."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.sendall(data)
        s.settimeout(within)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except TimeoutError:
            pytest.fail(f"the API still holds the connection after {within} s: {out[:200]!r}")
    return out, time.monotonic() - t0


def test_stalled_request_head_is_cut(quick_api: ApiServer) -> None:
    out, took = _closed_within(quick_api, b"GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\n", 5)
    assert out == b"" and took >= TIMEOUT * 0.9


def test_stalled_request_body_is_cut(quick_api: ApiServer, shared_stack: DemoStack) -> None:
    before = shared_stack.agent.view.status().state
    head = (
        b"PUT /api/v1/signals HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Otalink: 1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    )
    out, took = _closed_within(quick_api, head, 5)
    assert b"Traceback" not in out and took < 5
    assert shared_stack.agent.view.status().state == before


def test_a_trickled_request_is_cut_but_a_slow_one_in_time_passes(quick_api: ApiServer) -> None:
    req = b"GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", quick_api.port), timeout=10) as s:
        for i in range(0, len(req), 10):  # the whole head in about half the deadline
            s.sendall(req[i : i + 10])
            time.sleep(TIMEOUT / 2 / (len(req) / 10))
        out = s.recv(65536)
    assert out.startswith(b"HTTP/1.1 200")
    with socket.create_connection(("127.0.0.1", quick_api.port), timeout=10) as s:
        t0 = time.monotonic()
        got = b""
        try:
            for i in range(len(req)):  # one byte every 0.1 s: about 7 s for the whole head
                s.sendall(req[i : i + 1])
                time.sleep(0.1)
                if time.monotonic() - t0 > 4:
                    break
            got = s.recv(65536)
        except OSError:
            pass
    assert not got.startswith(b"HTTP/1.1 200"), "a trickled head was served"
    assert time.monotonic() - t0 < 5


def test_event_stream_is_never_cut(quick_api: ApiServer, shared_stack: DemoStack) -> None:
    """A response may last longer than the request deadline: the event stream goes on."""
    stop = threading.Event()

    def poke() -> None:
        allowed = False
        with httpx.Client(base_url=quick_api.url, headers={"X-Otalink": "1"}) as c:
            while not stop.wait(0.3):
                allowed = not allowed  # each change is a "cellular_allowed" event
                c.put("/api/v1/network/cellular", json={"allowed": allowed})
            c.put("/api/v1/network/cellular", json={"allowed": False})

    t = threading.Thread(target=poke, daemon=True)
    t.start()
    seen: list[float] = []
    t0 = time.monotonic()
    try:
        with httpx.stream("GET", quick_api.url + "/api/v1/events", timeout=10) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line.startswith("data: "):
                    seen.append(time.monotonic() - t0)
                if seen and seen[-1] > 3 * TIMEOUT:
                    break
    finally:
        stop.set()
        t.join(5)
    assert seen and seen[-1] > 3 * TIMEOUT


@pytest.mark.parametrize("value", ["+5", "-1", "1_0", "0x10", "1e3", "\u00b2", ""])
def test_last_event_id_is_ascii_digits(quick_api: ApiServer, value: str) -> None:
    r = httpx.get(
        quick_api.url + "/api/v1/events?follow=false",
        headers={"Last-Event-ID": value.encode("latin-1")},
        timeout=10,
    )
    assert r.status_code == 422 and r.json()["code"] == "api.invalid_request", r.text


@pytest.mark.parametrize("since", ["%D9%A3", "%C2%B2", "9" * 5000, "-1", "1_0"])
def test_since_is_a_bounded_number(quick_api: ApiServer, since: str) -> None:
    r = httpx.get(f"{quick_api.url}/api/v1/events?follow=false&since={since}", timeout=10)
    assert r.status_code == 422 and r.json()["code"] == "api.invalid_request", r.text


@pytest.mark.parametrize("length", [b"\xb2", b"9" * 5000, b"-1", b"0x10", b"1_0"])
def test_odd_content_length_is_a_clean_400(quick_api: ApiServer, length: bytes) -> None:
    head = b"PUT /api/v1/signals HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Otalink: 1\r\nContent-Length: "
    out, _ = _closed_within(quick_api, head + length + b"\r\n\r\n{}", 5)
    assert out.startswith(b"HTTP/1.1 400") and b"Traceback" not in out
