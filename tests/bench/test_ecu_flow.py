"""The whole update the line bench times: HELLO -> install -> ACTIVATE -> REBOOT -> trial boot ->
CONFIRM on the real agent, with the new image confirmed, byte for byte."""

from __future__ import annotations

import random

import pytest
from otalink.host.sim.ecusim.bundle import parse_bundle

from bench import ecu_flow
from tests.gateway.ecu.conftest import RigFactory


def test_bench_bundle_is_exactly_the_size_asked() -> None:
    payload = random.Random(1).randbytes(5000)
    b = ecu_flow.bench_bundle(payload, total=4096)
    assert len(b) == 4096
    entry, selftest, files = parse_bundle(b)
    assert (entry, selftest) == ("app", "check.selftest")
    assert files["blob.mpy"] == payload[: len(files["blob.mpy"])]
    with pytest.raises(ValueError):
        ecu_flow.bench_bundle(b"x" * 10, total=4096)  # cannot grow a short payload


def test_whole_update_is_timed_and_confirmed(rig_factory: RigFactory) -> None:
    rig = rig_factory(baud=921600)
    image = ecu_flow.bench_bundle(random.Random(2).randbytes(20000))
    run = ecu_flow.update(rig, image)
    assert run.confirmed is True
    assert run.whole_seconds is not None and run.reboot_seconds is not None
    assert run.whole_seconds > run.install_seconds + run.reboot_seconds
    assert run.begin_ack_seconds is not None and 0 < run.begin_ack_seconds < run.install_seconds
    assert run.ratio is not None and run.whole_ratio is not None
    assert run.whole_ratio < run.ratio
    f = run.figures()
    assert f["whole_ratio"] == run.whole_ratio and f["image_bytes"] == len(image)


def test_install_only_leaves_whole_figures_empty(rig_factory: RigFactory) -> None:
    rig = rig_factory()
    run = ecu_flow.update(rig, ecu_flow.bench_bundle(b"a" * 3000), whole=False)
    assert run.whole_seconds is None and run.whole_ratio is None and run.confirmed is None
    assert run.ratio is None  # an unpaced line has no line rate
