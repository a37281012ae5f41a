"""The local API against a real stack: schema, validation, problem+json, SSE replay, refusals."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest
from otalink.host.gateway.api.schema import SCHEMA_FILE, dumps, generate
from otalink.host.gateway.api.server import ApiServer, NotLoopback, check_loopback
from otalink.host.gateway.vehicle import signals as sig
from otalink.host.sim.demo.stack import DemoStack

from tests.sim.demo.conftest import StackFactory, api, wait_status

PROBLEM = "application/problem+json"


def problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM), r.headers
    body: dict[str, Any] = r.json()
    assert body["code"] == code, body
    assert body["status"] == status and body["title"] and body["type"].endswith(code)
    assert "Traceback" not in r.text
    return body


def test_committed_schema_matches_the_app() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == dumps(generate()), (
        "host/gateway/api/openapi.json is stale: "
        "run .venv/bin/python -m otalink.host.gateway.api.schema"
    )


def test_every_operation_answers_a_view_model() -> None:
    """Each operation's success answer has a response schema: a campaign view model (or a
    list of them), the event stream's text; never an untyped object."""
    doc = generate()
    seen = 0
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            ok = {k: v for k, v in op["responses"].items() if k.startswith("2")}
            assert list(ok) == ["200"], (method, path)
            for media, content in ok["200"]["content"].items():
                body = content["schema"]
                if media == "text/event-stream":
                    assert body == {"type": "string"}
                    continue
                assert media == "application/json"
                assert "$ref" in json.dumps(body), (method, path, body)
                seen += 1
    assert seen == 20
    names = set(doc["components"]["schemas"])
    assert {"Status", "UpdateDetails", "Precondition", "HistoryEntry", "EcuView"} <= names


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.com"])
def test_refuses_non_loopback(host: str) -> None:
    with pytest.raises(NotLoopback):
        check_loopback(host)
    with pytest.raises(NotLoopback):
        ApiServer(object(), host=host)  # type: ignore[arg-type]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_accepts_loopback(host: str) -> None:
    check_loopback(host)


def test_status_update_and_reads(shared_stack: DemoStack) -> None:
    with api(shared_stack) as c:
        st = c.get("/status").json()
        assert st["state"] == "available"
        assert set(st) >= {"state", "reason", "download", "install", "schedule", "network"}
        d = c.get("/update").json()
        for key in (
            "version",
            "title",
            "release_notes",
            "download_size",
            "est_install_s",
            "unavailable_functions",
            "network_policy",
            "ecus",
        ):
            assert key in d, key
        assert d["version"] == "2.0.0" and len(d["ecus"]) == 3
        pre = c.get("/preconditions").json()
        assert {p["id"] for p in pre} >= {"battery", "park", "navigation", "consent"}
        assert all({"ok", "value", "required", "hint"} <= set(p) for p in pre)
        ecus = c.get("/ecus").json()
        assert [e["ecu_id"] for e in ecus] == ["bms", "body", "adas"]
        for _ in range(5):  # fresh signed reports; a busy machine may miss one reply
            ecus = c.post("/ecus/refresh").json()
            if all(e["link"]["ok"] and e["report_verified"] for e in ecus):
                break
        assert all(e["link"]["ok"] and e["report_verified"] for e in ecus), ecus
        assert isinstance(c.get("/history").json(), list)
        assert c.get("/schedule").json() == {"at": None}
        assert c.get("/openapi.json").json()["info"]["title"] == "otalink local API"
        page = httpx.get(shared_stack.url + "/")
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert '<script src="/static/app.js">' in page.text
        for asset in ("app.js", "app.css", "icon.svg"):
            assert httpx.get(f"{shared_stack.url}/static/{asset}").status_code == 200
        problem(httpx.get(f"{shared_stack.url}/static/..%2fapp.py"), 404, "api.not_found")


def test_errors_are_problems(shared_stack: DemoStack) -> None:
    with api(shared_stack) as c:
        body = problem(c.post("/install", json={}), 422, "api.invalid_request")
        assert body["errors"][0]["loc"] == ["body", "confirm"]
        problem(c.post("/install", json={"confirm": "yes"}), 422, "api.invalid_request")
        problem(c.post("/install", json={"confirm": True, "x": 1}), 422, "api.invalid_request")
        problem(c.post("/install", json={"confirm": False}), 409, "campaign.confirmation_required")
        body = problem(c.post("/install", json={"confirm": True}), 409, "campaign.not_downloaded")
        assert body["state"] == "available"
        problem(
            c.post("/install", content=b"{not json", headers={"content-type": "application/json"}),
            422,
            "api.invalid_request",
        )
        problem(c.get("/nothing-here"), 404, "api.not_found")
        r = c.delete("/status")
        problem(r, 405, "api.method_not_allowed")
        assert r.headers["allow"] == "GET"
        assert c.patch("/schedule").headers["allow"] == "DELETE, GET, PUT"
        problem(c.put("/schedule", json={"at": "tomorrow-ish"}), 422, "api.invalid_request")
        problem(
            c.put("/schedule", json={"at": "2001-01-01T00:00:00Z"}),
            409,
            "campaign.schedule_in_past",
        )
        problem(c.delete("/schedule"), 404, "campaign.no_schedule")
        problem(c.post("/download/pause"), 409, "campaign.illegal_in_state")
        problem(c.post("/cancel"), 409, "campaign.illegal_in_state")
        problem(c.put("/signals", json={"signals": {"Speed": 1}}), 422, "api.invalid_request")
        problem(c.put("/signals", json={"signals": {}}), 422, "api.invalid_request")
        problem(
            c.put("/signals", json={"signals": {"Vehicle.Nope": 1}}), 404, "vehicle.unknown_signal"
        )
        problem(
            c.put("/signals", json={"signals": {sig.SPEED: "fast"}}),
            409,
            "vehicle.invalid_signal_value",
        )
        problem(c.get("/events", headers={"Last-Event-ID": "x"}), 422, "api.invalid_request")
        assert c.get("/status").json()["state"] == "available"  # nothing changed


def test_signals_round_trip(shared_stack: DemoStack) -> None:
    with api(shared_stack) as c:
        r = c.put("/signals", json={"signals": {sig.SOC: 55.5, sig.NAV_GUIDANCE: True}})
        assert r.status_code == 200
        got = c.get("/signals").json()["signals"]
        assert got[sig.SOC]["value"] == 55.5 and got[sig.NAV_GUIDANCE]["value"] is True
        nav = next(p for p in c.get("/preconditions").json() if p["id"] == "navigation")
        assert nav["ok"] is False and nav["hint"] == "End navigation"
        c.put("/signals", json={"signals": {sig.SOC: 80.0, sig.NAV_GUIDANCE: False}})
        nav = next(p for p in c.get("/preconditions").json() if p["id"] == "navigation")
        assert nav["ok"] is True


def _read_events(url: str, headers: dict[str, str], stop_after: int) -> list[dict[str, Any]]:
    """Raw SSE parse: (id line, data line) pairs, checking the id matches the data."""
    out: list[dict[str, Any]] = []
    with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(10, read=10)) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        ev_id = None
        for line in r.iter_lines():
            if line.startswith("id: "):
                ev_id = int(line[4:])
            elif line.startswith("data: "):
                ev = json.loads(line[6:])
                assert ev["id"] == ev_id
                out.append(ev)
                if len(out) >= stop_after:
                    break
    return out


def test_event_stream_ids_and_replay(shared_stack: DemoStack) -> None:
    base = shared_stack.url + "/api/v1/events"
    everything = _read_events(base + "?since=0&follow=false", {}, 10_000)
    ids = [e["id"] for e in everything]
    assert ids == sorted(ids) and len(set(ids)) == len(ids) and len(ids) >= 3
    assert any(e["type"] == "state" and e["data"]["state"] == "available" for e in everything)
    mid = ids[len(ids) // 2]
    replay = _read_events(base + "?follow=false", {"Last-Event-ID": str(mid)}, 10_000)
    assert [e["id"] for e in replay] == [i for i in ids if i > mid]

    # live: a reconnecting client gets what it missed, then new events as they happen
    got: list[dict[str, Any]] = []

    def follow() -> None:
        got.extend(_read_events(base, {"Last-Event-ID": str(ids[-1])}, 1))

    t = threading.Thread(target=follow)
    t.start()
    time.sleep(0.3)
    with api(shared_stack) as c:
        c.put("/network/cellular", json={"allowed": True})
        c.put("/network/cellular", json={"allowed": False})
    t.join(10)
    assert got and got[0]["id"] > ids[-1] and got[0]["type"] == "cellular_allowed"


def test_refusals_leave_state_unchanged(make_stack: StackFactory) -> None:
    """Preconditions not met: 409 with each failing item and its fix; nothing changes."""
    stack = make_stack()
    with api(stack) as c:
        c.post("/download")
        wait_status(stack, lambda s: s["state"] in ("downloaded", "awaiting_confirmation"))
        c.put("/signals", json={"signals": {sig.GEAR: 127, sig.CONSENT: False}})
        body = problem(
            c.post("/install", json={"confirm": True}), 409, "campaign.preconditions_not_met"
        )
        failing = {f["id"]: f["hint"] for f in body["failing"]}
        assert failing == {
            "park": "Shift to Park",
            "consent": "Enable OTA updates in your account",
        }
        assert c.get("/status").json()["state"] in ("downloaded", "awaiting_confirmation")
        c.put("/signals", json={"signals": {sig.GEAR: sig.GEAR_PARK, sig.CONSENT: True}})
        st = c.post("/install", json={"confirm": True}).json()
        assert st["state"] in ("installing", "installing_committed", "restarting", "verifying")
        st = wait_status(stack, lambda s: s["state"] == "succeeded")
        assert st["state"] == "succeeded"
        assert c.get("/history").json()
        problem(c.post("/cancel"), 409, "campaign.illegal_in_state")
        assert c.post("/acknowledge").json()["state"] == "idle"


def test_foreign_host_and_content_type_refused(shared_stack: DemoStack) -> None:
    """DNS rebinding (foreign Host) and form/text posts from web pages do nothing."""
    with api(shared_stack) as c:
        for foreign in ("evil.example:8765", "127.0.0.1.nip.example", "127.evil.example"):
            problem(c.get("/status", headers={"Host": foreign}), 421, "api.not_local")
        r = c.post("/install", content=b'{"confirm": true}', headers={"content-type": "text/plain"})
        assert r.status_code == 422, r.text
        assert c.get("/status", headers={"Host": "localhost:1"}).status_code == 200
        assert c.get("/status", headers={"Host": "[::1]:8765"}).status_code == 200
        assert c.get("/status").json()["state"] == "available"
