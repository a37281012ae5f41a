"""The peak heap `make bench` reports is the agent's peak, read from its current trace format.

The old reading matched only "start=" and the exit line (printed only on REBOOT), so for an agent
the bench stops without a reboot it reported the start-up heap. These tests run the real agent.
"""

from __future__ import annotations

import random
import re

from otalink.host.sim.line.rig import EcuRig

from bench import ecu_flow, memtrace
from tests.gateway.ecu.conftest import RigFactory

TRACE = """otalink: booted slot 0
otalink-mem start=46752
otalink-mem live=48160 in otalink.device.report
otalink-mem live=47000 after type 1
otalink-mem live=56448 in drop wire
otalink-mem live=50000 after type 3
otalink-mem peak_live=56448 heap=64640
otalink-mem start=47584
"""


def test_parse_reads_every_line_kind() -> None:
    t = memtrace.parse(TRACE)
    assert t.start == 46752  # the first boot's
    assert t.peak == 56448 and t.where == "in drop wire"
    assert t.peak_inside == 56448 and t.peak_between == 50000
    assert t.heap == 64640 and t.samples == 7
    assert memtrace.samples(TRACE)[1] == ("in otalink.device.report", 48160)


def test_parse_of_nothing() -> None:
    t = memtrace.parse(b"no trace here\n")
    assert t.peak is None and t.start is None and t.samples == 0


def test_real_agent_peak_is_inside_a_request(rig_factory: RigFactory) -> None:
    """An install on the real agent: the trace has in-request samples (BEGIN's instruction
    decode and signature check) above the between-message ones, and the parsed peak is the
    highest number the agent printed, not its start-up heap."""
    rig: EcuRig = rig_factory(config_extra={"memtrace": True})
    image = ecu_flow.bench_bundle(random.Random(3).randbytes(12000))
    ecu_flow.update(rig, image, whole=False)
    out = rig.proc.output()
    t = memtrace.parse(out)
    printed = [int(v) for v in re.findall(r"otalink-mem \S*?=(\d+)", out)]
    assert t.start is not None and t.peak == max(printed)
    assert t.peak > t.start
    assert t.peak_inside is not None, out
    assert t.peak_inside > (t.peak_between or 0), out
    assert t.where is not None and t.where.startswith("in "), t.where
    # the rig's own reading (EcuRig.peak_heap) agrees: it used to match only "start=" and the
    # exit line, i.e. report the start-up heap of an agent that was never rebooted
    assert rig.peak_heap() == t.peak
