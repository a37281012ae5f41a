"""Link-fault matrix: the real agent behind LineSim, one transfer per fault (issue 6, part 2).

``make test`` runs the short matrix (BER 1e-5 and 1e-4, 1 % and 5 % burst drops, a stall scaled
to 1.5 s over a 0.5 s reply timeout, a disconnect, a device reset); ``make soak`` adds the full
30 s stall and the 1000-transfer sweep (test_soak.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest
from otalink.host.sim.line import FaultConfig
from otalink.host.sim.line.rig import EcuRig

from tests.gateway.ecu.conftest import RigFactory
from tests.sim.line.faulted import COMPLETED, CORRUPTED, FAILED_CLEANLY, faulted_transfer

IMAGE = 48 * 1024


def _disconnect(seconds: float) -> Callable[[EcuRig], None]:
    def act(rig: EcuRig) -> None:
        rig.sim.disconnect()
        time.sleep(seconds)
        rig.sim.reconnect()

    return act


def _stall(seconds: float) -> Callable[[EcuRig], None]:
    return lambda rig: rig.sim.stall(seconds)


def _reset(rig: EcuRig) -> None:
    rig.reset()


# name -> (faults, image size): 1 % / 5 % of the bytes lost in bursts of 32 bytes on average
FAULTS = {
    "ber_1e-5": (FaultConfig(ber=1e-5), IMAGE),
    "ber_1e-4": (FaultConfig(ber=1e-4), IMAGE // 2),
    "drop_1pct_bursts": (FaultConfig(drop_rate=0.01, drop_burst=32), IMAGE // 2),
    "drop_5pct_bursts": (FaultConfig(drop_rate=0.05, drop_burst=32), IMAGE // 4),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_byte_faults(rig_factory: RigFactory, name: str) -> None:
    faults, size = FAULTS[name]
    rig = rig_factory(baud=921600, seed=sum(name.encode()))
    image = os.urandom(size)
    out = faulted_transfer(rig, image, 2, faults=faults, timeout=0.5, activate=True)
    assert out.kind in (COMPLETED, FAILED_CLEANLY), out
    assert out.kind != CORRUPTED


@pytest.mark.parametrize(
    ("name", "action", "timeout"),
    [
        ("stall", _stall(1.5), 0.5),  # longer than the client's reply timeout
        ("disconnect", _disconnect(1.5), 0.5),
        ("device_reset", _reset, 0.5),
    ],
)
def test_line_events_mid_transfer(
    rig_factory: RigFactory, name: str, action: Callable[[EcuRig], None], timeout: float
) -> None:
    rig = rig_factory(baud=921600)
    image = os.urandom(IMAGE * 2)
    out = faulted_transfer(
        rig, image, 2, action=action, action_after=IMAGE, timeout=timeout, activate=True
    )
    assert out.kind == COMPLETED, out  # these the client rides out by itself
    if name != "stall":
        assert out.reconnects >= 1, out


@pytest.mark.slow
def test_thirty_second_stall(rig_factory: RigFactory) -> None:
    rig = rig_factory(baud=115200)
    image = os.urandom(IMAGE)
    out = faulted_transfer(rig, image, 2, action=_stall(30.0), action_after=IMAGE // 3)
    assert out.kind == COMPLETED, out
    assert out.seconds >= 30
