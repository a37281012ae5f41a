"""The attack suite: one test per threat (Uptane/TUF threat model). Each must be refused with its
error code, and nothing may be downloaded in full or handed on for the ECUs."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest
from otalink.host.gateway.update import errors as E
from otalink.host.gateway.update.repos import hashed_target_path
from otalink.host.tools.repo import keys as keymod
from tuf.api.metadata import Metadata

from tests.gateway.update.conftest import FAST, VIN, World
from tests.gateway.update.netutil import HostileServer


def image_file(w: World, name: str) -> Path:
    sha = w.repos.image.image(name).sha256
    return w.server_root / "image" / "targets" / hashed_target_path(name, sha)


def assert_nothing_complete(w: World, target: str | None = None) -> None:
    """No complete image (or not ``target``) in the vehicle's download directory."""
    done = [n for n in w.downloads() if not n.endswith((".part", ".part.json"))]
    if target is None:
        assert done == []
    else:
        assert target not in done


def refuse(
    w: World,
    exc: type[E.UpdateError],
    code: str,
    target: str = "brake-2.0.bin",
    **check_kw: object,
) -> E.UpdateError:
    """The attack is refused with ``code``: at check (nothing downloaded at all) or while
    downloading (the attacked ``target`` never completes)."""
    client = w.client()
    plan = None
    with pytest.raises(exc) as ei:
        plan = client.check(**check_kw)  # type: ignore[arg-type]
        client.download(plan)  # type: ignore[arg-type]
    assert ei.value.code == code, str(ei.value)
    assert_nothing_complete(w, target if plan is not None else None)
    return ei.value


# ---- arbitrary software -------------------------------------------------------------------------
def test_arbitrary_software_metadata_signed_by_attacker(world: World, tmp_path: Path) -> None:
    evil = keymod.generate(tmp_path / "evil", "evil")
    md_dir = world.server_root / "image" / "metadata"
    version = world.repos.image.targets().version
    path = md_dir / f"{version}.targets.json"
    md = Metadata.from_file(str(path))
    md.signed.targets["brake-2.0.bin"].hashes["sha256"] = "00" * 32
    md.signatures.clear()
    md.sign(evil.signer)
    path.write_bytes(md.to_bytes())
    err = refuse(world, E.SignatureError, "trust.signature")
    assert "Image" in str(err)


def test_arbitrary_software_altered_image(world: World) -> None:
    f = image_file(world, "brake-2.0.bin")
    data = bytearray(f.read_bytes())
    data[1000] ^= 0xFF  # same length, different content
    f.write_bytes(bytes(data))
    refuse(world, E.TargetIntegrityError, "trust.integrity")


def test_arbitrary_software_instruction_not_signed_by_director(
    world: World, tmp_path: Path
) -> None:
    evil = keymod.generate(tmp_path / "evil", "evil")
    world.director.online["instruction"] = [evil]  # the attacker signs the instruction
    world.director.assign("brake", "brake-v1", world.repos.image.image("brake-2.0.bin"))
    world.publish()
    refuse(world, E.InstructionError, "trust.instruction")


# ---- rollback -----------------------------------------------------------------------------------
def test_rollback_older_release_counter(world: World) -> None:
    err = refuse(world, E.RollbackError, "trust.rollback", installed={"brake": 3})
    assert err.reason == "release_counter"


def test_rollback_older_metadata_version(world: World) -> None:
    ts = world.server_root / "image" / "metadata" / "timestamp.json"
    old = ts.read_bytes()
    assert world.client().check() is not None
    world.add_image("brake-2.1.bin", 1000, "brake-v1", 3)
    world.publish()
    assert world.client().check() is not None  # the vehicle now trusts the newer timestamp
    ts.write_bytes(old)  # a mirror replays the old, validly signed state
    err = refuse(world, E.RollbackError, "trust.rollback")
    assert err.reason == "metadata_version"


# ---- freeze -------------------------------------------------------------------------------------
def test_freeze_expired_metadata(world: World) -> None:
    world.repos.image.set_expiry("timestamp", -60)
    world.repos.image.resign("timestamp")
    world.publish()
    refuse(world, E.FreezeError, "trust.expired")


def test_freeze_expired_install_instruction(world: World) -> None:
    now = int(time.time())
    img = world.repos.image.image("brake-2.0.bin")
    world.director.assign("brake", "brake-v1", img, issued=now - 7200, expires=now - 3600)
    world.publish()
    refuse(world, E.FreezeError, "trust.expired")


# ---- mix-and-match ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "change",
    [
        {"sha256": "ab" * 32},
        {"length": 299_999},
        {"release_counter": 9},
        {"name": "ghost-1.0.bin"},
    ],
    ids=["hash", "length", "release_counter", "unknown_image"],
)
def test_mix_and_match_director_and_image_disagree(world: World, change: dict[str, object]) -> None:
    img = replace(world.repos.image.image("brake-2.0.bin"), **change)  # type: ignore[arg-type]
    world.director.assign_unchecked("brake", "brake-v1", img)
    world.publish()
    refuse(world, E.MixAndMatchError, "trust.mix_and_match")


# ---- endless data / slow retrieval / partial bundle ---------------------------------------------
def test_endless_data_longer_target(world: World) -> None:
    f = image_file(world, "brake-2.0.bin")
    f.write_bytes(f.read_bytes() + b"\0" * 100_000)
    refuse(world, E.EndlessDataError, "trust.endless_data")


def test_endless_data_unbounded_stream(world: World) -> None:
    hostile = HostileServer("endless")
    try:
        client = world.client(image_targets_url=hostile.url + "/")
        plan = client.check()
        assert plan is not None
        with pytest.raises(E.EndlessDataError):
            client.download(plan)
        assert_nothing_complete(world, "bms-5.1.bin")
        # the client stopped reading right after the trusted length, not at the attacker's will
        assert client.downloader.last_stats.bytes_received <= 120_000
        part = world.tmp / "vehicle" / "downloads" / "bms-5.1.bin.part"
        assert not part.exists() or part.stat().st_size <= 120_000
    finally:
        hostile.close()


def test_slow_retrieval_of_a_target(world: World) -> None:
    hostile = HostileServer("trickle", length=120_000, gap=0.02)
    try:
        client = world.client(image_targets_url=hostile.url + "/")
        plan = client.check()
        assert plan is not None
        t0 = time.monotonic()
        with pytest.raises(E.SlowRetrievalError) as ei:
            client.download(plan)
        # stopped like a dying link (kept, resumable), not a trust failure: tests/gateway/update/
        # test_slow_link.py
        assert ei.value.code == "download.slow_retrieval" and ei.value.reason == "unstable"
        assert isinstance(ei.value, E.ConnectivityError)
        assert time.monotonic() - t0 < 15
        assert_nothing_complete(world, "bms-5.1.bin")
    finally:
        hostile.close()


def test_slow_retrieval_of_response_headers(world: World) -> None:
    hostile = HostileServer("headers", gap=0.05)
    try:
        policy = replace(FAST, header_timeout_s=0.5, max_attempts=2)
        client = world.client(image_targets_url=hostile.url + "/", policy=policy)
        plan = client.check()
        assert plan is not None
        t0 = time.monotonic()
        with pytest.raises(E.SlowRetrievalError):
            client.download(plan)
        assert time.monotonic() - t0 < 10
        assert_nothing_complete(world, "bms-5.1.bin")
    finally:
        hostile.close()


def test_slow_retrieval_of_metadata(world: World) -> None:
    world.server.set_rate(200)  # bytes per second
    refuse(world, E.SlowRetrievalError, "download.slow_retrieval")


def test_partial_bundle_truncated_target(world: World) -> None:
    f = image_file(world, "brake-2.0.bin")
    f.write_bytes(f.read_bytes()[:150_000])
    refuse(world, E.TargetIntegrityError, "trust.integrity")
    assert not (world.tmp / "vehicle" / "downloads" / "brake-2.0.bin.part").exists()


# ---- wrong hardware -----------------------------------------------------------------------------
def test_wrong_hardware_image_for_other_ecu_type(world: World) -> None:
    bms_image = world.repos.image.image("bms-5.1.bin")  # built for bms-v2
    world.director.assign_unchecked("brake", "brake-v1", bms_image)
    world.publish()
    refuse(world, E.WrongHardwareError, "trust.wrong_hardware")


def test_wrong_hardware_director_misnames_ecu_hardware(world: World) -> None:
    img = world.add_image("brake-x.bin", 1000, "brake-v9", 3)
    world.director.assign("brake", "brake-v9", img)  # consistent, but the ECU is brake-v1
    world.publish()
    refuse(world, E.WrongHardwareError, "trust.wrong_hardware")


# ---- compromised key below threshold ------------------------------------------------------------
def test_compromised_key_below_threshold(world: World) -> None:
    image = world.repos.image
    kd = world.repos.key_dir
    k1 = world.repos.key("image-targets")
    k2 = keymod.generate(kd, "image-targets-2")
    image.set_online_keys("targets", [k1, k2], [str(kd / "image-targets.key"), str(kd / "x")])
    image.rotate_root(
        [world.repos.key("image-root")], add={"targets": [k2]}, thresholds={"targets": 2}
    )
    world.publish()
    assert world.client().check() is not None  # 2-of-2 signed targets: accepted
    # the attacker holds k1 (and the online snapshot/timestamp keys), not k2
    image.online["targets"] = [k1]
    world.add_image("brake-9.0.bin", 1000, "brake-v1", 9)
    image.publish(world.server_root / "image", unchecked=True)
    err = refuse(world, E.BelowThresholdError, "trust.below_threshold")
    assert "1/2" in str(err)


# ---- root rotation ------------------------------------------------------------------------------
def test_root_rotation_followed(world: World) -> None:
    image = world.repos.image
    old_root = world.repos.key("image-root")
    new_root = keymod.generate(world.repos.key_dir, "image-root-2")
    new_ts = keymod.generate(world.repos.key_dir, "image-timestamp-2")
    image.rotate_root(
        [old_root, new_root], add={"root": [new_root]}, remove={"root": [old_root.keyid]}
    )
    image.rotate_online_key(
        "timestamp", [new_ts], [str(world.repos.key_dir / "image-timestamp-2.key")], [new_root]
    )
    world.publish()
    client = world.client()  # provisioned with root v1 only
    assert client.check() is not None
    trusted = json.loads((world.tmp / "vehicle" / "tuf" / "image" / "root.json").read_bytes())
    assert trusted["signed"]["version"] == 3
    assert new_root.keyid in trusted["signed"]["roles"]["root"]["keyids"]
    assert old_root.keyid not in trusted["signed"]["roles"]["root"]["keyids"]


def test_root_rotation_not_signed_by_old_root_refused(world: World) -> None:
    image = world.repos.image
    new_root = keymod.generate(world.repos.key_dir, "image-root-2")
    old_id = world.repos.key("image-root").keyid
    # an attacker without the old root key tries to install its own root
    image.rotate_root([new_root], add={"root": [new_root]}, remove={"root": [old_id]})
    image.publish(world.server_root / "image", unchecked=True)
    refuse(world, E.SignatureError, "trust.signature")


def test_director_vehicle_mismatch_unknown_ecu(world: World) -> None:
    img = world.repos.image.image("brake-2.0.bin")
    world.director.assign("brake-rear", "brake-v1", img)  # not in this vehicle's inventory
    world.publish()
    refuse(world, E.UnknownEcuError, "trust.unknown_ecu")
    assert world.director.vehicle_id == VIN


# ---- delta updates: a patch only for exactly the bound base, result and hardware ---------------
def _with_patch(w: World, bound: str) -> str:
    """brake 1.0 and 2.0 listed, brake 3.0 with patches from both; the Director binds ``bound``
    (a version) as brake's base. Returns the 3.0 image's name."""
    w.add_image("brake-1.0.bin", 300_000, "brake-v1", 1)
    img = w.add_image("brake-3.0.bin", 300_000, "brake-v1", 3, delta_from=["1.0", "2.0"])
    base = next(e for e in w.repos.image.deltas(img.name) if e["base_version"] == bound)
    w.director.assign("brake", "brake-v1", img, delta_base=base["base_sha256"])
    w.publish()
    return img.name


def _patch_file(w: World, name: str, base_version: str) -> Path:
    e = next(e for e in w.repos.image.deltas(name) if e["base_version"] == base_version)
    return w.server_root / "image" / "targets" / hashed_target_path(e["target"], e["sha256"])


def test_mix_and_match_patch_served_for_another_base(world: World) -> None:
    """The server swaps in the signed patch from 1.0 where the vehicle asked for the one from
    2.0 (the base its instruction binds): refused by the target's signed hashes."""
    name = _with_patch(world, "2.0")
    plan = world.client().check()
    assert plan is not None and plan.delivery("brake").base_version == "2.0"
    _patch_file(world, name, "2.0").write_bytes(_patch_file(world, name, "1.0").read_bytes())
    with pytest.raises(E.TargetIntegrityError) as ei:
        world.client().download(plan)
    assert ei.value.code == "trust.integrity"
    assert_nothing_complete(world, plan.delivery("brake").target)


def test_mix_and_match_instruction_binds_a_base_no_patch_starts_from(world: World) -> None:
    """The instruction binds a base the image lists no patch from: the full image, and why."""
    img = world.add_image("brake-3.0.bin", 300_000, "brake-v1", 3, delta_from=["2.0"])
    world.director.assign("brake", "brake-v1", img, delta_base="ab" * 32)
    world.publish()
    plan = world.client().check()
    assert plan is not None
    d = plan.delivery("brake")
    assert (d.target, d.is_delta, d.reason) == (img.name, False, "delta.none_listed")
    assert img.name in world.client().download(plan)


def test_patch_for_another_hardware_id_not_used(world: World) -> None:
    """A listed patch whose own signed fields name other hardware (a repository mistake) is
    never sent: the full image, reason delta.mismatch."""
    name = _with_patch(world, "2.0")
    pname = next(e["target"] for e in world.repos.image.deltas(name) if e["base_version"] == "2.0")
    with world.repos.image.edit_targets() as t:
        t.targets[pname].unrecognized_fields["custom"]["hardware_ids"] = ["brake-v9"]
    world.repos.image._targets_changed()  # signed by the Image repository's own keys
    world.publish()
    plan = world.client().check()
    assert plan is not None
    d = plan.delivery("brake")
    assert (d.target, d.reason) == (name, "delta.mismatch")


def test_rollback_via_an_old_patch(world: World) -> None:
    """The old release 2.0 served (with its patch from 1.0) to a vehicle that runs 3: refused
    at check, neither the image nor its patch downloaded; and the old patch served in place of
    the new one is refused by the new patch's signed hashes."""
    world.add_image("brake-1.0.bin", 300_000, "brake-v1", 1)
    old = world.add_image("brake-2.0.bin", 300_000, "brake-v1", 2, delta_from=["1.0"])
    base = world.repos.image.deltas(old.name)[0]["base_sha256"]
    world.director.assign("brake", "brake-v1", old, delta_base=base)
    world.publish()
    refuse(world, E.RollbackError, "trust.rollback", installed={"brake": 3})
    old_patch = _patch_file(world, old.name, "1.0").read_bytes()
    name = _with_patch(world, "2.0")
    plan = world.client().check()
    assert plan is not None and plan.delivery("brake").is_delta
    _patch_file(world, name, "2.0").write_bytes(old_patch)
    with pytest.raises(E.TargetIntegrityError):
        world.client().download(plan)
    assert_nothing_complete(world, plan.delivery("brake").target)
