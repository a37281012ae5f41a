"""The ECU inventory: named slot and boot states mirroring protocol/codes.py, and ``ecus.json``.

``data/ecus-v1.json`` is the inventory the agent of commit d955c95 wrote after the campaigns of
``test_record.py`` (adas rolled back: its new slot rejected, boot state reverted).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from otalink.host.gateway.campaign.inventory import (
    BootState,
    EcuRecord,
    Inventory,
    SlotState,
)
from otalink.host.gateway.config import EcuConfig
from otalink.host.gateway.ecu import fleet as fl
from otalink.protocol import codes

DATA = Path(__file__).with_name("data")


def _consts(prefix: str) -> dict[str, int]:
    return {k[len(prefix) :]: v for k, v in vars(codes).items() if k.startswith(prefix)}


def test_states_mirror_the_protocol_codes() -> None:
    assert {m.name: m.value for m in SlotState} == _consts("SLOT_")
    assert {m.name: m.value for m in BootState} == _consts("BOOT_")


def _inventory(tmp_path: Path) -> Inventory:
    path = tmp_path / "ecus.json"
    shutil.copyfile(DATA / "ecus-v1.json", path)
    ecus = [EcuConfig(e, f"{e}-hw1", "socket://127.0.0.1:9", bytes(32)) for e in ("adas", "bms")]
    return Inventory(path, fl.Fleet(ecus))


def test_reads_the_inventory_an_older_agent_wrote(tmp_path: Path) -> None:
    inv = _inventory(tmp_path)
    adas = inv.get("adas")
    assert adas is not None and adas.version == "1.0"
    assert adas.active_state is SlotState.CONFIRMED and adas.boot_state is BootState.REVERTED
    assert [s.state for s in adas.slots] == [SlotState.REJECTED, SlotState.CONFIRMED]
    assert adas.last_error == codes.E_SELFTEST and adas.verified
    assert inv.installed() == {"adas": 1, "bms": 1}
    assert inv.release_floors() == {"adas": 1, "bms": 1}
    reports = {r.ecu_id: r for r in inv.signed_reports()}
    old = json.loads((DATA / "ecus-v1.json").read_text())
    assert reports["adas"].body == bytes.fromhex(old["adas"]["body"])  # the exact bytes
    # written back unchanged (same format: states as their integers)
    inv.save()
    assert json.loads((tmp_path / "ecus.json").read_text()) == old


def test_unknown_states_stay_numbers_and_bad_entries_are_dropped(tmp_path: Path) -> None:
    old = json.loads((DATA / "ecus-v1.json").read_text())
    old["adas"]["slots"][0]["state"] = 9  # a state a newer ECU may send
    old["adas"]["boot_state"] = 7
    del old["bms"]["sig"]
    path = tmp_path / "ecus.json"
    path.write_text(json.dumps(old))
    inv = Inventory(path, fl.Fleet([]))
    adas = inv.get("adas")
    assert adas is not None and adas.slots[0].state == 9 and adas.boot_state == 7
    assert not isinstance(adas.slots[0].state, SlotState)
    assert inv.get("bms") is None
    path.write_text("{not json")
    assert Inventory(path, fl.Fleet([])).get("adas") is None


def test_only_a_confirmed_verified_image_counts_as_installed() -> None:
    old = json.loads((DATA / "ecus-v1.json").read_text())["adas"]
    rec = EcuRecord.model_validate(old)
    assert rec.running_counter == 1
    trial = rec.model_copy(update={"active_state": SlotState.TRIAL})
    assert trial.running_counter is None
    unverified = rec.model_copy(update={"verified": False})
    assert unverified.running_counter is None
