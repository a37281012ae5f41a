"""Delta updates through the whole campaign (issue 13), real device agents (MicroPython) on pty
lines: the final report says per ECU whether it got a patch or the full image, its size and
why a patch fell back, also at the update server; the receive probe of a new agent that came
as a patch tests the receive path past its first frames."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from otalink.host.gateway.campaign import reports as rep
from otalink.host.gateway.campaign.agent import Agent
from otalink.host.sim.ecusim import agent_tree, build_image
from otalink.host.sim.ecusim.process import APP_HEAP
from otalink.protocol import codes

from tests.device_component._ecu import ROOT, compile_mpy
from tests.gateway.campaign.vehicle import Vehicle, wait_for

END = ("succeeded", "failed_rolled_back", "failed_needs_service")


@pytest.fixture
def make_vehicle(tmp_path: Path, mpy_tree: Path) -> Iterator[type[Vehicle]]:
    made: list[Vehicle] = []

    class _V(Vehicle):
        def __init__(self, ecu_ids: tuple[str, ...]) -> None:
            super().__init__(tmp_path, ecu_ids, heap=APP_HEAP)  # format 2: an application
            made.append(self)

    try:
        yield _V
    finally:
        for v in made:
            v.stop()


def _image(ecu_id: str, version: str, agent: dict[str, bytes] | None = None) -> bytes:
    """A format-2 image: a small application (the poll form) beside the agent tree (the staging
    tree's unless ``agent``)."""
    app = (
        f"ECU = {ecu_id!r}\nVERSION = {version!r}\n"
        "def selftest():\n    return True\n\ndef poll(agent):\n    pass\n"
    ).encode()
    return build_image({"app.py": app}, "app", agent=agent or True)


def _install(agent: Agent, *, before_install: object = None) -> str:
    """check, download, then install with the driver's confirmation; the end state."""
    assert agent.commands.check().available is True
    agent.commands.download_start()
    wait_for(lambda: agent.view.status().state == "awaiting_confirmation", 60, "download")
    if callable(before_install):
        before_install()
    agent.commands.install(confirm=True)
    wait_for(lambda: agent.view.status().state in END, 120, f"one of {END}")
    return str(agent.view.status().state)


def _first_release(v: Vehicle) -> Agent:
    v.publish("1.0", 1, {e: _image(e, "1.0") for e in v.ecu_ids})
    agent = Agent(v.config())
    agent.start()
    assert _install(agent) == "succeeded", agent.view.status()
    agent.commands.acknowledge()
    return agent


def test_final_report_says_patch_or_full_image_per_ecu(make_vehicle: type[Vehicle]) -> None:
    """bms takes its patch; body's patch is refused by the ECU (a damaged patch header:
    E_PATCH), so it gets the full image and the reason; adas has no patch bound. The campaign
    result (status, history) and the signed report the update server stored say which, with
    the bytes and the fallback reason."""
    v = make_vehicle(("bms", "body", "adas"))
    agent = _first_release(v)
    try:
        new = {e: _image(e, "2.0") for e in v.ecu_ids}
        v.publish("2.0", 2, {e: new[e] for e in ("bms", "body")}, delta_from="1.0")
        v.publish("2.0", 2, {"adas": new["adas"]})

        def damage_body_patch() -> None:
            patch = Path(agent.machine.record().images["body"])  # type: ignore[index]
            data = bytearray(patch.read_bytes())
            data[0] ^= 0x10  # the patch's header: a form the ECU does not apply
            patch.write_bytes(bytes(data))

        details = agent.commands.check()
        assert details.available is True
        shown = {e.ecu_id: e for e in agent.view.update_details().ecus}  # type: ignore[union-attr]
        assert _install(agent, before_install=damage_body_patch) == "succeeded"
        st = agent.view.status()
        assert st.result is not None
        got = st.result.ecus
        bms, body, adas = got["bms"], got["body"], got["adas"]
        assert bms.delivery_kind == "patch" and bms.delta_from == "1.0", bms
        assert bms.delivery == shown["bms"].delivery and bms.delivery.endswith("delta from 1.0")
        assert bms.delivery_size == shown["bms"].delivery_size < len(new["bms"])
        assert bms.delivery_reason is None
        assert body.delivery_kind == "full" and body.delta_from is None, body
        assert body.delivery_reason == "delta.refused:ecu_rejected.e_patch", body
        assert body.delivery_size == len(new["body"]) and body.delivery.endswith("full image")
        assert adas.delivery_kind == "full" and adas.delivery_reason is None, adas
        assert adas.delivery_size == len(new["adas"])
        for e in got.values():
            assert e.outcome == "confirmed" and e.running_version == "2.0", e
            assert e.sent_bytes is not None and e.sent_bytes > 0, e
        # the patch crossed the serial line in far fewer bytes than a full image
        assert bms.sent_bytes is not None and adas.sent_bytes is not None
        assert bms.sent_bytes * 5 < adas.sent_bytes, (bms, adas)
        hist = [h for h in agent.view.history() if h.result == "succeeded"]
        assert hist[-1].ecus == got

        # the signed report at the update server: accepted (stored, not rejected), the same
        wait_for(lambda: len(v.server_reports()) >= 2, 20, "both reports at the server")
        key = rep.load_or_create_key(agent.config.gateway_key_path)
        docs = [rep.verify_envelope(r["report"], bytes(key.verify_key)) for r in v.server_reports()]
        ecus = next(
            d["result"]["ecus"]  # type: ignore[call-overload,index]
            for d in docs
            if d["result"]["state"] == "succeeded"  # type: ignore[call-overload,index]
            and d["result"]["ecus"]["bms"]["delivery_kind"] == "patch"  # type: ignore[call-overload,index]
        )
        assert ecus == {i: o.model_dump(mode="json") for i, o in got.items()}
        assert ecus["body"]["delivery_reason"].startswith("delta.refused:")
        rejected = agent.config.state_dir / "reports" / "rejected"
        assert not rejected.exists() or not list(rejected.iterdir())
    finally:
        agent.stop()


def _breaks_past(wire: int, version: str) -> dict[str, bytes]:
    """An agent tree whose DATA path corrupts what it hashes once a transfer's wire passes
    ``wire`` bytes: it answers and takes a short transfer, but no full image it receives
    verifies (a window / long-stream bug)."""
    src = (ROOT / "device" / "slotwrite.py").read_text()
    bad = src.replace(
        "        s.t_wire = end\n",
        f"        s.t_wire = end\n        if end > {wire}:\n"
        "            s.sha.update(b'!')  # the bug\n",
    )
    assert bad != src
    tree = agent_tree(version=version)
    tree["otalink/device/slotwrite.mpy"] = compile_mpy(bad, "otalink.device.slotwrite")
    return tree


def test_probe_of_a_patched_new_agent_tests_past_its_first_frames(
    make_vehicle: type[Vehicle],
) -> None:
    """The new agent came as a patch (a small wire stream); the probe before CONFIRM must still
    send more than a window of frames, so an agent that breaks past 8 KiB of wire is found
    and rolled back instead of being confirmed (it could never take a full image)."""
    v = make_vehicle(("bms",))
    agent = _first_release(v)
    try:
        before = agent.inventory.get("bms")
        assert before is not None and before.agent_version != "9.0.0"
        v.publish("2.0", 2, {"bms": _image("bms", "2.0", _breaks_past(8192, "9.0.0"))}, "1.0")
        assert _install(agent) == "failed_rolled_back", agent.view.status()
        st = agent.view.status()
        assert st.reason == "ecu_failed:bms:probe_failed", st
        assert st.install.ecus["bms"].delivery_kind == "patch", st.install.ecus
        done = [e["data"] for e in agent.events.since(0) if e["type"] == "ecu_probe_done"]
        last = done[-1]
        assert last["agent_version"] == "9.0.0" and last["ok"] is False, done
        assert isinstance(last["wire_bytes"], int) and last["wire_bytes"] > 8192, last
        agent.commands.refresh_ecus()
        ecus = {e.ecu_id: e for e in agent.view.ecus()}
        assert ecus["bms"].version == "1.0" and ecus["bms"].last_error == codes.E_PROBE_FAILED
    finally:
        agent.stop()
