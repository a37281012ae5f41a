"""Choosing a patch (issue 13): the update client offers the listed patch of exactly the bound
base, downloads it instead of the image (TUF-verified), and the report-based choice
(``deltas.choose``) falls back to the full image with its reason."""

from __future__ import annotations

import dataclasses

from otalink.host.gateway.update import deltas
from otalink.host.gateway.update.types import Delivery, UpdatePlan

from tests.gateway.update.conftest import World


def _plan(world: World) -> tuple[UpdatePlan, str]:
    world.add_image("brake-1.0.bin", 300_000, "brake-v1", 1)
    img = world.add_image("brake-3.0.bin", 300_000, "brake-v1", 3, delta_from=["1.0", "2.0"])
    entry = next(e for e in world.repos.image.deltas(img.name) if e["base_version"] == "1.0")
    world.director.assign("brake", "brake-v1", img, delta_base=entry["base_sha256"])
    world.publish()
    plan = world.client().check()
    assert plan is not None
    return plan, entry["target"]


def test_patch_offered_downloaded_instead_of_the_image(world: World) -> None:
    plan, patch = _plan(world)
    d = plan.delivery("brake")
    a = next(a for a in plan.assignments if a.ecu_id == "brake")
    assert (d.target, d.base_version, d.base_sha256) == (patch, "1.0", a.base_sha256)
    assert d.label == f"{round(d.length / 1000)} kB, delta from 1.0"
    assert plan.delivery("bms").target == "bms-5.1.bin" and not plan.delivery("bms").is_delta
    assert set(plan.payloads()) == {patch, "bms-5.1.bin"}
    assert plan.download_size == d.length + 120_000
    paths = world.client().download(plan)
    assert set(paths) == {patch, "bms-5.1.bin"}  # not brake-3.0.bin
    assert "brake-3.0.bin" not in world.downloads()
    again = UpdatePlan.from_json(plan.to_json())  # the campaign persists the plan
    assert again.deliveries == plan.deliveries and again.plan_id == plan.plan_id


def test_choose_by_the_signed_report(world: World) -> None:
    plan, _ = _plan(world)
    d = plan.delivery("brake")
    a = next(a for a in plan.assignments if a.ecu_id == "brake")
    base = bytes.fromhex(d.base_sha256 or "")
    assert deltas.choose(d, a, base, True, True) == d
    cases = {
        deltas.NO_REPORT: (None, True, True),
        deltas.BASE_NOT_ACTIVE: (b"\x01" * 32, True, True),
        deltas.NO_CAP: (base, True, False),
    }
    for reason, (active, confirmed, cap) in cases.items():
        got = deltas.choose(d, a, active, confirmed, cap)
        assert got == Delivery(a.target, a.length, a.sha256, reason=reason)
        assert got.label.endswith("kB, full image")
    # the base active but not yet confirmed (on trial): not a base to patch
    assert deltas.choose(d, a, base, False, True).reason == deltas.BASE_NOT_ACTIVE
    full = dataclasses.replace(d, target=a.target, base_version=None)
    assert deltas.choose(full, a, None, False, False) is full  # nothing offered: unchanged
