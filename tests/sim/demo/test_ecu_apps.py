"""The demo's ECUs run their real example applications (boards/examples) beside the agent, and
the gateway's campaign meets them: an update the application defers is retried by the policy
and shown with the application's reason, then installed; a release that brings a new agent is
probed (receive probe) before CONFIRM, and an agent that cannot receive is rolled back."""

from __future__ import annotations

import time
from typing import Any

from otalink.host.sim.demo.stack import DemoStack
from otalink.host.sim.ecusim import agent_tree
from otalink.protocol import codes

from tests.device_component._ecu import ROOT, compile_mpy
from tests.sim.demo.conftest import StackFactory, api, wait_status

TERMINAL = ("succeeded", "failed_rolled_back", "failed_needs_service")


def _app(stack: DemoStack, ecu_id: str, chan: int, data: bytes) -> bytes:
    """A request to ``ecu_id``'s application over the gateway's own line to it."""
    line = stack.agent.fleet.lines[ecu_id]
    with line.lock:
        reply: bytes = line.client().app(chan, data)
    return reply


def _adas(st: dict[str, Any]) -> dict[str, Any]:
    ecus: dict[str, Any] = (st.get("install") or {}).get("ecus") or {}
    return ecus.get("adas") or {}


def test_deferred_update_retried_with_reason_then_installed(make_stack: StackFactory) -> None:
    stack = make_stack(factory=True)  # the factory release runs the applications
    # the driver-assistance application engages its assist: it defers any update (adas.py)
    assert _app(stack, "adas", 2, b"\x01") == b"ok"
    with api(stack) as c:
        c.post("/check")
        wait_status(stack, lambda s: s["state"] == "available")
        c.post("/download")
        wait_status(stack, lambda s: s["state"] in ("downloaded", "awaiting_confirmation"))
        c.post("/install", json={"confirm": True})
    st = wait_status(stack, lambda s: _adas(s).get("phase") == "deferred")
    assert _adas(st)["reason"] == "assist active", st
    assert st["state"] == "installing"  # nothing failed: the campaign waits for the ECU
    time.sleep(1.0)
    assert wait_status(stack, lambda s: True)["state"] == "installing"
    # the assist disengages: the retry (after the 10 s the application asked for) goes through
    assert _app(stack, "adas", 2, b"\x00") == b"ok"
    st = wait_status(stack, lambda s: s["state"] in TERMINAL)
    assert st["state"] == "succeeded", st
    assert _adas(st).get("reason") is None
    with api(stack) as c:
        versions = {e["ecu_id"]: e["version"] for e in c.get("/ecus").json()}
    assert versions == {"bms": "2.0.0", "body": "2.0.0", "adas": "2.0.0"}, versions
    deferred = [e for e in stack.agent.events.since(0) if e["type"] == "ecu_deferred"]
    assert deferred and deferred[0]["data"]["reason"] == "assist active", deferred


def _cannot_receive(version: str) -> dict[str, bytes]:
    """An agent tree whose DATA path corrupts what it hashes: it answers, but no update (nor a
    probe) it receives has the bytes sent (the self-update tests' third broken agent)."""
    src = (ROOT / "device" / "slotwrite.py").read_text()
    bad = src.replace(
        "    else:\n        s.sha.update(cbuf)\n",
        "    else:\n        cbuf[0] ^= 0x55  # the bug\n        s.sha.update(cbuf)\n",
    )
    assert bad != src
    tree = agent_tree(version=version)
    tree["otalink/device/slotwrite.mpy"] = compile_mpy(bad, "otalink.device.slotwrite")
    return tree


def test_new_agent_is_probed_before_confirm_and_rolled_back_when_it_cannot_receive(
    make_stack: StackFactory,
) -> None:
    new = {"bms": agent_tree(version="9.0.0"), "adas": _cannot_receive("9.0.0")}
    stack = make_stack(factory=True, new_agents=new)
    with api(stack) as c:
        before = {e["ecu_id"]: e["agent_version"] for e in c.get("/ecus").json()}
        c.post("/check")
        wait_status(stack, lambda s: s["state"] == "available")
        c.post("/download")
        wait_status(stack, lambda s: s["state"] in ("downloaded", "awaiting_confirmation"))
        c.post("/install", json={"confirm": True})
        st = wait_status(stack, lambda s: s["state"] in TERMINAL, timeout=120)
        ecus = {e["ecu_id"]: e for e in c.get("/ecus").json()}
    assert st["state"] == "failed_rolled_back", st
    assert st["reason"] == "ecu_failed:adas:probe_failed", st
    # the device recorded why: the host's signed REVERT rolled back with E_PROBE_FAILED
    assert ecus["adas"]["last_error"] == codes.E_PROBE_FAILED, ecus["adas"]
    assert {i: e["version"] for i, e in ecus.items()} == dict.fromkeys(ecus, "1.0.0")
    assert {i: e["agent_version"] for i, e in ecus.items()} == before
    assert "9.0.0" not in before.values()
    # the new agents were probed (bms's receives: it passed), the unchanged one was not
    done = {e["data"]["ecu_id"]: e["data"] for e in stack.agent.events.since(0)
            if e["type"] == "ecu_probe_done"}  # fmt: skip
    assert set(done) == {"bms", "adas"}, done
    assert done["bms"]["ok"] is True and done["adas"]["ok"] is False, done
    assert done["adas"]["agent_version"] == "9.0.0" and done["adas"]["before"] == before["adas"]
