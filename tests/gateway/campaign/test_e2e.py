"""End to end: the host agent drives three real device agents (MicroPython) over pty lines."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import nacl.signing
import pytest
from otalink.host.gateway.campaign import reports as rep
from otalink.host.gateway.campaign.agent import Agent
from otalink.host.gateway.campaign.inventory import BootState, SlotState
from otalink.protocol import codes

from tests.gateway.campaign.vehicle import Vehicle, wait_for


@pytest.fixture
def vehicle(tmp_path: Path, mpy_tree: Path) -> Iterator[Vehicle]:
    v = Vehicle(tmp_path)
    try:
        yield v
    finally:
        v.stop()


def _run_campaign(agent: Agent, end_states: tuple[str, ...]) -> str:
    res = agent.commands.check()
    assert res.available is True, res
    details = agent.view.update_details()
    assert details is not None and len(details.ecus) == 3
    agent.commands.download_start()
    wait_for(lambda: agent.view.status().state == "awaiting_confirmation", 30, "download")
    with pytest.raises(Exception) as ei:
        agent.commands.install(confirm=False)
    assert getattr(ei.value, "code", "") == "campaign.confirmation_required"
    agent.commands.install(confirm=True)
    wait_for(lambda: agent.view.status().state in end_states, 90, f"one of {end_states}")
    return str(agent.view.status().state)


def _events(agent: Agent, type_: str) -> list[dict[str, object]]:
    return [e for e in agent.events.since(0) if e["type"] == type_]


def test_three_ecus_update_then_selftest_failure_rolls_all_back(vehicle: Vehicle) -> None:
    v1 = vehicle.release("1.0", 1)
    agent = Agent(vehicle.config())
    agent.start()
    try:
        end = ("succeeded", "failed_rolled_back", "failed_needs_service")
        assert _run_campaign(agent, end) == "succeeded", agent.view.status()
        ecus = {e.ecu_id: e for e in agent.view.ecus()}
        for e in vehicle.ecu_ids:
            assert ecus[e].version == "1.0", ecus[e]
            assert ecus[e].report_verified is True
        st = agent.view.status()
        assert st.install.overall_percent == 100.0
        assert all(x.phase == "confirmed" for x in st.install.ecus.values())
        n_transfers = len(_events(agent, "ecu_transfer_done"))
        assert n_transfers == 3
        agent.commands.acknowledge()

        # second release: the adas bundle fails its self-test on the trial boot
        vehicle.release("2.0", 2, failing=("adas",))
        assert _run_campaign(agent, end) == "failed_rolled_back", agent.view.status()
        st = agent.view.status()
        assert (st.reason or "").startswith("ecu_failed:adas:"), st
        reverts = {e["data"]["ecu_id"] for e in _events(agent, "ecu_revert")}
        assert reverts == {"bms", "body"}  # the failing one reverted by itself
        agent.commands.refresh_ecus()
        ecus = {e.ecu_id: e for e in agent.view.ecus()}
        for e in vehicle.ecu_ids:
            slots, active = ecus[e].slots, ecus[e].active_slot
            assert ecus[e].version == "1.0", ecus[e]
            assert slots and active is not None and slots[active].state == SlotState.CONFIRMED
        assert ecus["adas"].last_error == codes.E_SELFTEST
        assert ecus["adas"].boot_state == BootState.REVERTED
        hist = agent.view.history()
        assert [h.result for h in hist if h.result] == ["succeeded", "failed_rolled_back"]

        # both campaigns reported to the server, signed by the gateway, with the ECUs' reports
        wait_for(lambda: len(vehicle.server_reports()) >= 2, 20, "reports at the server")
        key = rep.load_or_create_key(agent.config.gateway_key_path)
        docs = []
        for r in vehicle.server_reports():
            docs.append(rep.verify_envelope(r["report"], bytes(key.verify_key)))
        results = sorted(d["result"]["state"] for d in docs)
        assert results == ["failed_rolled_back", "succeeded"]
        last = next(d for d in docs if d["result"]["state"] == "failed_rolled_back")
        assert sorted(e["ecu_id"] for e in last["ecus"]) == sorted(vehicle.ecu_ids)
        for entry in last["ecus"]:
            pub = vehicle.keys[entry["ecu_id"]].public
            nacl.signing.VerifyKey(pub).verify(
                base64.b64decode(entry["body"]), base64.b64decode(entry["sig"])
            )
        assert len(v1) == 3
    finally:
        agent.stop()
