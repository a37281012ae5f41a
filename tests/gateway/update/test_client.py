"""The update client against the embedded server: a verified plan, downloads, permissions."""

from __future__ import annotations

import hashlib

import pytest
from otalink.host.gateway.update import errors as E
from otalink.host.gateway.update.instruction import decode_instruction, verify_instruction
from otalink.host.gateway.update.types import DownloadProgress, UpdatePlan

from tests.gateway.update.conftest import World, image_bytes


def test_check_builds_verified_plan(world: World) -> None:
    client = world.client()
    plan = client.check()
    assert plan is not None
    by_ecu = {a.ecu_id: a for a in plan.assignments}
    assert set(by_ecu) == {"brake", "bms"}
    brake = by_ecu["brake"]
    assert brake.length == len(world.images["brake-2.0.bin"])
    assert brake.sha256 == hashlib.sha256(world.images["brake-2.0.bin"]).hexdigest()
    assert (brake.release_counter, brake.version, brake.kind) == (2, "2.0", "firmware")
    assert by_ecu["bms"].kind_code == 0
    ins = decode_instruction(brake.instruction)
    assert (ins.ecu_id, ins.hw_id, ins.target, ins.image_len) == (
        "brake",
        "brake-v1",
        "brake-2.0.bin",
        brake.length,
    )
    assert ins.sha256 == brake.sha256_bytes
    # the signatures the ECU will check verify against the Director's instruction key
    assert (
        verify_instruction(
            brake.instruction, list(brake.instruction_sigs), world.repos.instruction_public_keys()
        )
        == 1
    )
    assert all(len(k) == 8 and len(s) == 64 for k, s in brake.instruction_sigs)
    # screen data from the Image repository
    assert plan.download_size == 300_000 + 120_000
    assert plan.est_install_s == 60
    assert plan.unavailable_functions == ("driving",)
    # the notes as written, no "TITLE version:" prefix (the screen shows title and version)
    assert sorted(plan.release_notes.split("\n\n")) == ["release 2", "release 5"]
    assert plan.title == "BMS + BRAKE"
    # the plan survives the campaign's persistence
    assert UpdatePlan.from_json(plan.to_json()) == plan
    assert world.downloads() == []  # check never downloads images
    # trusted metadata persisted for both repositories
    for d in ("image", "director"):
        assert (world.tmp / "vehicle" / "tuf" / d / "timestamp.json").exists()


def test_one_release_on_several_ecus_has_plain_title_and_notes(world: World) -> None:
    """The demo's shape: every ECU gets an image of the same release (one title, one text)."""
    notes = "Smoother regenerative braking.\nFixes a rare charging stop."
    for ecu, hw in (("brake", "brake-v1"), ("bms", "bms-v2")):
        img = world.repos.image.add_image(
            f"{ecu}-3.0.bin",
            image_bytes(1000, ecu),
            hardware_ids=[hw],
            version="3.0",
            release_counter=3,
            title="Drive 3.0",
            release_notes=notes,
        )
        world.director.assign(ecu, hw, img)
    world.publish()
    plan = world.client().check()
    assert plan is not None
    assert {i.release_notes for i in plan.images.values()} == {notes}
    assert plan.release_notes == notes
    assert plan.title == "Drive 3.0"


def test_download_and_already_installed(world: World) -> None:
    client = world.client()
    plan = client.check()
    assert plan is not None
    seen: list[DownloadProgress] = []
    files = client.download(plan, seen.append)
    for name, path in files.items():
        assert path.read_bytes() == world.images[name]
    assert seen[-1].overall_done == seen[-1].overall_total == plan.download_size
    assert client.downloaded(plan) == files
    # installed == assigned: nothing to do; one ECU behind: a plan for that ECU only
    assert client.check(installed={"brake": 2, "bms": 5}) is None
    plan2 = client.check(installed={"brake": 2, "bms": 4})
    assert plan2 is not None and [a.ecu_id for a in plan2.assignments] == ["bms"]
    client.discard(keep=plan2)
    assert world.downloads() == ["bms-5.1.bin"]


def test_metered_link_needs_permission(world: World) -> None:
    client = world.client()
    plan = client.check()
    assert plan is not None
    with pytest.raises(E.NeedsPermissionError) as ei:
        client.download(plan, network="cellular")
    assert ei.value.code == "download.needs_permission"
    with pytest.raises(E.ConnectivityError) as ei2:
        client.download(plan, network="none")
    assert ei2.value.reason == "no_connection"
    assert world.downloads() == []
    files = client.download(plan, network="cellular", allow_metered=True)
    assert len(files) == 2


def test_no_connection_is_a_state_and_recovers(world: World) -> None:
    client = world.client()
    plan = client.check()
    assert plan is not None
    world.server.set_offline(True)
    assert client.probe(timeout_s=1).ok is False
    with pytest.raises(E.ConnectivityError) as ei:
        client.download(plan)
    assert ei.value.retryable and ei.value.reason in ("unstable", "no_connection")
    with pytest.raises(E.ConnectivityError):
        client.check()
    world.server.set_offline(False)
    assert client.probe(timeout_s=1).ok is True
    assert set(client.download(plan)) == {"brake-2.0.bin", "bms-5.1.bin"}


def test_server_down_probe_reason(world: World) -> None:
    client = world.client()
    assert client.check() is not None  # leaves keep-alive connections in the pool
    world.server.stop()  # must cut them too
    r = client.probe(timeout_s=1)
    assert not r.ok and r.reason == "no_connection"
    with pytest.raises(E.ConnectivityError) as ei:
        client.check()
    assert ei.value.reason in ("no_connection", "unstable")
    with pytest.raises(E.ConnectivityError) as ei:
        world.client().check()  # a fresh client: nothing answers at all
    assert ei.value.reason == "no_connection"


def test_stop_then_resume_in_a_new_client(world: World) -> None:
    plan = world.client().check()
    assert plan is not None
    world.server.set_rate(400_000)  # slow enough to stop half-way
    stopped_at: list[int] = []

    def stop() -> bool:
        return bool(stopped_at)

    def progress(p: DownloadProgress) -> None:
        if p.target == "brake-2.0.bin" and p.done >= 100_000 and not stopped_at:
            stopped_at.append(p.done)

    with pytest.raises(E.DownloadInterrupted):
        world.client().download(plan, progress, stop)
    world.server.set_rate(None)
    fresh = world.client()  # a restarted agent: state only on disk
    files = fresh.download(plan)
    assert files["brake-2.0.bin"].read_bytes() == world.images["brake-2.0.bin"]
    brake = fresh.last_stats["brake-2.0.bin"]
    # resumed where the stopped download left off; nothing before it fetched again
    assert brake.resumed_from == [stopped_at[0]]
    assert brake.bytes_received == 300_000 - stopped_at[0]
    assert brake.bytes_discarded == 0
