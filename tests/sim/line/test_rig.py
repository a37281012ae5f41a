"""EcuRig's own life cycle (host/sim/line/rig.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from otalink.host.gateway.ecu.errors import EcuError
from otalink.host.sim.line.rig import EcuRig


def test_a_rig_whose_agent_never_answers_leaves_no_ecu_running(tmp_path: Path) -> None:
    # Found after `make bench`: the line bench's board profile that does not fit (stm32, its
    # agent never answers HELLO at -X heapsize=60926) left that ECU's process running, and its
    # supervisor restarting it, for as long as the machine was up: `with rig:` never calls
    # __exit__ when __enter__ (start) raises, and neither did the tests' rig factory.
    # 60k: the agent boots and runs but cannot sign INFO (a whole update needs 72k, HELLO alone
    # ~64k: bench/bench_device.py's fail_<heap> lines), so it never answers HELLO
    rig = EcuRig(tmp_path / "ecu", baud=None, heapsize="60k")
    with pytest.raises(EcuError):
        rig.start(timeout=3.0)
    pid = rig.proc.pid
    time.sleep(1.5)  # a supervisor still at work would have restarted it by now
    assert rig.proc.poll() is not None, "the ECU process is still running"
    assert rig.proc.pid == pid, "the ECU process was restarted after the failed start"
