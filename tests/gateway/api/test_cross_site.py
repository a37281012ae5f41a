"""Cross-site requests to the local API (issue 10, defect 8).

The API listens on loopback, so any web page open in a browser on the same machine can reach
it. A page of another origin must not be able to change anything: every mutating request
(POST/PUT/PATCH/DELETE on a route) needs ``X-Otalink: 1`` (a custom header a form or a simple
cross-origin request cannot carry; a cross-origin ``fetch`` that sets it is preflighted, and the
API answers no CORS) and is refused when ``Origin`` or ``Sec-Fetch-Site`` says it comes from
elsewhere. Tested with raw HTTP and from a real page on another origin in Debian's chromium.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from otalink.host.gateway.api.guard import write_refusal
from otalink.host.sim.demo.stack import DemoStack

from tests.sim.demo.conftest import StackFactory, api, wait_status

PROBLEM = "application/problem+json"
OK_HEADER = {"X-Otalink": "1"}
# every mutating operation of the API, with a body it accepts
WRITES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/check", None),
    ("POST", "/download", None),
    ("POST", "/download/pause", None),
    ("POST", "/download/resume", None),
    ("POST", "/download/cancel", None),
    ("PUT", "/network/cellular", {"allowed": True}),
    ("POST", "/install", {"confirm": True}),
    ("PUT", "/schedule", {"at": "2031-01-01T02:00:00+00:00"}),
    ("DELETE", "/schedule", None),
    ("POST", "/cancel", None),
    ("POST", "/acknowledge", None),
    ("POST", "/ecus/refresh", None),
    ("PUT", "/signals", {"signals": {"Vehicle.Speed": 80}}),
]


def test_every_mutating_route_is_listed() -> None:
    """The list above is the schema's: a new mutating route must be added (and protected)."""
    schema = json.loads(Path("host/gateway/api/openapi.json").read_text())
    ops = {
        (m.upper(), p.removeprefix("/api/v1"))
        for p, item in schema["paths"].items()
        for m in item
        if m.upper() in ("POST", "PUT", "PATCH", "DELETE")
    }
    assert ops == {(m, p) for m, p, _ in WRITES}
    for p, item in schema["paths"].items():
        for m, op in item.items():
            if m.upper() in ("POST", "PUT", "PATCH", "DELETE"):
                names = {(x["in"], x["name"]) for x in op.get("parameters", []) if x["required"]}
                assert ("header", "X-Otalink") in names, (m, p)
                assert "403" in op["responses"], (m, p)


def _problem(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, (r.request.method, r.request.url, r.text)
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["code"] == code
    assert "access-control-allow-origin" not in r.headers


def _send(stack: DemoStack, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
    with httpx.Client(base_url=stack.url + "/api/v1", timeout=30) as c:
        return c.request(method, path, json=body, headers=headers)


def _state(c: httpx.Client) -> str:
    return str(c.get("/api/v1/status").json()["state"])


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_raw_cross_site_writes_refused(
    shared_stack: DemoStack, method: str, path: str, body: dict[str, Any] | None
) -> None:
    host = shared_stack.url.removeprefix("http://")
    with httpx.Client(base_url=shared_stack.url, timeout=30) as c:
        before = _state(c)
        url = "/api/v1" + path
        # what a form or a no-cors fetch of another page sends (no custom header)
        for headers in (
            {},
            {"Origin": f"http://{host}"},  # even same-origin: the header is required
            {"Content-Type": "text/plain"},
            {"X-Otalink": "0"},
        ):
            r = c.request(method, url, json=body, headers=headers)
            _problem(r, 403, "api.header_required")
        # the header, but the browser says the request comes from elsewhere
        for headers in (
            {"Origin": "http://evil.example"},
            {"Origin": "null"},
            {"Origin": f"http://{host.split(':')[0]}:1"},  # same host, other port
            {"Origin": f"https://{host}.evil.example"},
            {"Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-site"},  # another port of 127.0.0.1 is the same site
            {"Origin": f"http://{host}", "Sec-Fetch-Site": "same-site"},
        ):
            r = c.request(method, url, json=body, headers={**OK_HEADER, **headers})
            _problem(r, 403, "api.cross_site")
        assert _state(c) == before  # nothing changed


def test_same_origin_and_plain_clients_pass(shared_stack: DemoStack) -> None:
    """The screen (same origin, Sec-Fetch-Site: same-origin) and the CLI (no Origin) with the
    header reach the agent; reads need nothing."""
    host = shared_stack.url.removeprefix("http://")
    browser_like = {"Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin", **OK_HEADER}
    for headers in (OK_HEADER, browser_like, {**OK_HEADER, "Sec-Fetch-Site": "none"}):
        r = _send(shared_stack, "POST", "/download/pause", None, headers)
        assert r.status_code == 409 and r.json()["code"] == "campaign.illegal_in_state", r.text
        r = _send(shared_stack, "PUT", "/network/cellular", {"allowed": False}, headers)
        assert r.status_code == 200, r.text
    with httpx.Client(base_url=shared_stack.url, timeout=30) as c:
        assert c.get("/api/v1/status", headers={"Origin": "http://evil.example"}).status_code == 200
        r = c.get("/api/v1/status", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in r.headers  # readable by nobody else
        r = c.options(
            "/api/v1/download",
            headers={
                "Origin": "http://evil.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-otalink",
            },
        )
        assert r.status_code == 405 and "access-control-allow-origin" not in r.headers
        # unknown routes and methods are still 404 / 405 (nothing to protect there)
        _problem(c.post("/api/v1/nothing"), 404, "api.not_found")
        r = c.patch("/api/v1/schedule")
        _problem(r, 405, "api.method_not_allowed")


def test_write_refusal_rules() -> None:
    def h(**kw: str) -> list[tuple[bytes, bytes]]:
        return [(k.replace("_", "-").encode(), v.encode()) for k, v in kw.items()]

    assert write_refusal(h(host="127.0.0.1:8765", x_otalink="1")) is None
    ok = h(host="localhost:8765", origin="http://localhost:8765", x_otalink="1")
    assert write_refusal(ok) is None
    assert (
        write_refusal(h(host="LOCALHOST:8765", origin="http://localhost:8765", x_otalink="1"))
        is None
    )
    assert write_refusal(h(host="127.0.0.1:8765", x_otalink=" 1 ")) is None
    assert write_refusal(h(host="127.0.0.1:8765"))[0] == "api.header_required"  # type: ignore[index]
    two = [(b"host", b"127.0.0.1:1"), (b"x-otalink", b"1"), (b"origin", b"http://127.0.0.1:1")]
    two.append((b"origin", b"http://evil.example"))
    assert write_refusal(two)[0] == "api.cross_site"  # type: ignore[index]


# ---- a real page of another origin in a real browser ---------------------------------------

ATTACK = """<!doctype html><html><body>
<iframe name="sink" id="sink"></iframe>
<form id="form" method="POST" target="sink" action="@API@/api/v1/download">
  <input name="confirm" value="true">
</form>
<script>
const API = "@API@/api/v1";
window.results = {};
async function attack() {
  for (const p of ["/check", "/download", "/download/pause", "/download/resume", "/cancel",
                   "/download/cancel", "/acknowledge", "/ecus/refresh"]) {
    try { await fetch(API + p, {method: "POST", mode: "no-cors"}); results[p] = "sent"; }
    catch (e) { results[p] = "error: " + e; }
  }
  try {
    await fetch(API + "/install", {method: "POST", mode: "no-cors",
      headers: {"Content-Type": "text/plain"}, body: '{"confirm": true}'});
    results.text_plain = "sent";
  } catch (e) { results.text_plain = "error: " + e; }
  try {
    await fetch(API + "/download", {method: "POST", headers: {"X-Otalink": "1"}});
    results.preflighted = "sent";
  } catch (e) { results.preflighted = "blocked"; }
  try {
    await fetch(API + "/network/cellular", {method: "PUT",
      headers: {"Content-Type": "application/json"}, body: '{"allowed": true}'});
    results.json = "sent";
  } catch (e) { results.json = "blocked"; }
  results.beacon = navigator.sendBeacon(API + "/download", "x");
  return results;
}
</script></body></html>"""


@pytest.fixture
def attacker(tmp_path: Path) -> Iterator[int]:
    """A static web server on another port: the other origin's page."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None  # type: ignore[method-assign]
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield int(srv.server_address[1])
    srv.shutdown()
    srv.server_close()


@pytest.mark.browser
@pytest.mark.parametrize("page_host", ["127.0.0.1", "localhost"])  # same-site, cross-site
def test_page_of_another_origin_changes_nothing(
    make_stack: StackFactory, browser: Any, attacker: int, tmp_path: Path, page_host: str
) -> None:
    stack = make_stack()
    (tmp_path / "attack.html").write_text(ATTACK.replace("@API@", stack.url))
    with api(stack) as c:
        st = c.get("/status").json()
        assert st["state"] == "available"
        last = max(e["id"] for e in _events(stack))
    page = browser.new_page()
    try:
        page.goto(f"http://{page_host}:{attacker}/attack.html")
        results = page.evaluate("attack()")
        page.evaluate("document.getElementById('form').submit()")
        frame = page.frame(name="sink")
        assert frame is not None
        frame.wait_for_load_state(timeout=10_000)
        page.wait_for_timeout(300)
        # the form really reached the API, which refused it (Playwright reads the
        # cross-origin frame; the attacking page itself cannot)
        text = page.frame(name="sink").content()  # type: ignore[union-attr]
        assert '"code":"api.cross_site"' in text.replace(" ", ""), text
    finally:
        page.close()
    # the simple requests were sent (opaque answers); the preflighted ones never left
    assert all(results[p] == "sent" for p in ("/check", "/download", "/cancel")), results
    assert results["text_plain"] == "sent" and results["beacon"] is True, results
    assert results["preflighted"] == "blocked" and results["json"] == "blocked", results
    st = wait_status(stack, lambda s: True)
    assert st["state"] == "available" and st["cellular_allowed"] is False, st
    new = [e for e in _events(stack) if e["id"] > last]
    assert not [e for e in new if e["type"] in ("state", "cellular_allowed")], new


def _events(stack: DemoStack) -> list[dict[str, Any]]:
    out = []
    url = stack.url + "/api/v1/events?since=0&follow=false"
    with httpx.stream("GET", url, timeout=30) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                out.append(json.loads(line[6:]))
    return out


@pytest.mark.browser
def test_the_screen_still_works(make_stack: StackFactory, browser: Any) -> None:
    """The agent's own page (same origin) sends the header: Install Update starts the download."""
    stack = make_stack()
    page = browser.new_page()
    try:
        page.goto(stack.url + "/")
        page.wait_for_selector("body[data-screen=available]", state="attached", timeout=60_000)
        page.click("[data-action=install-update]:visible")
        wait_status(stack, lambda s: s["state"] != "available")
        page.wait_for_selector(
            "body[data-screen=downloading], body[data-screen=confirm]",
            state="attached",
            timeout=60_000,
        )
    finally:
        page.close()
