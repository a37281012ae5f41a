"""A vehicle of three ECUs on three lines, updated in parallel by three EcuClients.
(The time ratio to one ECU is a figure: bench/bench_line.py, vehicle.three_ecus.*.)"""

from __future__ import annotations

import os
import threading

import pytest
from otalink.host.gateway.ecu import EcuRejected
from otalink.host.sim.line.rig import EcuRig
from otalink.protocol import codes

from tests.gateway.ecu.conftest import RigFactory


def test_three_ecus_three_lines_in_parallel(rig_factory: RigFactory) -> None:
    rigs = [rig_factory(f"v{i}", ecu_id=f"ecu-{i}", baud=921600) for i in range(3)]
    images = [os.urandom(60_000 + 1000 * i) for i in range(3)]
    errors: list[BaseException] = []

    def one(rig: EcuRig, image: bytes) -> None:
        try:
            instr, sigs = rig.instruction(image)
            rig.client().install(instr, sigs, image)
        except BaseException as exc:
            errors.append(exc)

    pairs = list(zip(rigs, images, strict=True))
    threads = [threading.Thread(target=one, args=pair) for pair in pairs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for rig, image in pairs:
        st = rig.client().status()
        assert st.ecu_id == rig.ecu_id
        assert rig.slot_bytes(st.active_slot ^ 1, len(image)) == image
    # an instruction for ecu-0, validly signed for ecu-1, is still refused there: the ECU id
    instr, sigs = rigs[0].instruction(images[0], signer=rigs[1].director)
    with pytest.raises(EcuRejected) as exc:
        rigs[1].client().install(instr, sigs, images[0])
    assert exc.value.wire_code == codes.E_ECU_MISMATCH
