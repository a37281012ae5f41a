"""Soak (make soak): at least 1000 faulted transfers, several ECUs in parallel, small images,
unpaced lines. Reports completed / failed cleanly / corrupted; corrupted must be 0, and a worker
that raises fails the soak with its reason (it used to vanish from the count)."""

from __future__ import annotations

import random
import threading
import time
import traceback
from collections import Counter

import pytest
from otalink.host.sim.line import FaultConfig
from otalink.host.sim.line.rig import EcuRig

from tests.gateway.ecu.conftest import RigFactory
from tests.sim.line.faulted import COMPLETED, CORRUPTED, FAILED_CLEANLY, Outcome, faulted_transfer

TRANSFERS = 1000
ECUS = 4

MENU = [
    ("ber_1e-5", FaultConfig(ber=1e-5), None),
    ("ber_1e-4", FaultConfig(ber=1e-4), None),
    ("drop_1pct", FaultConfig(drop_rate=0.01, drop_burst=32), None),
    ("drop_5pct", FaultConfig(drop_rate=0.05, drop_burst=32), None),
    ("dup", FaultConfig(dup_rate=1e-3), None),
    ("disconnect", None, "disconnect"),
    ("reset", None, "reset"),
    ("stall", None, "stall"),
]


def _action(kind: str | None):  # type: ignore[no-untyped-def]
    if kind == "disconnect":

        def cut(rig: EcuRig) -> None:
            rig.sim.disconnect()
            time.sleep(0.8)
            rig.sim.reconnect()

        return cut
    if kind == "reset":
        return lambda rig: rig.reset()
    if kind == "stall":
        return lambda rig: rig.sim.stall(0.8)
    return None


@pytest.mark.slow
def test_thousand_faulted_transfers(rig_factory: RigFactory) -> None:
    rigs = [rig_factory(f"soak{i}", baud=None, seed=100 + i) for i in range(ECUS)]
    outcomes: list[tuple[str, Outcome]] = []
    crashed: list[str] = []  # a worker that raised: its reason (fails the soak)
    lock = threading.Lock()
    per = TRANSFERS // ECUS

    def worker(i: int, rig: EcuRig) -> None:
        rng = random.Random(i)
        name = "-"
        n = -1
        try:
            for n in range(per):
                name, faults, act = MENU[rng.randrange(len(MENU))]
                image = rng.randbytes(rng.choice((2048, 4096, 8192)))
                out = faulted_transfer(
                    rig, image, 2 + n, faults=faults, action=_action(act),
                    action_after=len(image) // 2, timeout=0.5, recover_timeout=20.0,
                )  # fmt: skip
                with lock:
                    outcomes.append((name, out))
        except BaseException as exc:  # reported below, with its traceback
            with lock:
                crashed.append(
                    f"worker {i}, transfer {n} ({name}): {exc!r}\n{traceback.format_exc()}"
                )

    threads = [threading.Thread(target=worker, args=(i, r)) for i, r in enumerate(rigs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts = Counter(o.kind for _, o in outcomes)
    by_fault = Counter((n, o.kind) for n, o in outcomes)
    print(f"\nsoak: {len(outcomes)} transfers: completed {counts[COMPLETED]}, failed cleanly "
          f"{counts[FAILED_CLEANLY]}, corrupted {counts[CORRUPTED]}")  # fmt: skip
    for key in sorted(by_fault):
        print(f"  {key[0]:12} {key[1]:15} {by_fault[key]}")
    assert not crashed, "\n".join(crashed)
    assert len(outcomes) == TRANSFERS
    assert counts[CORRUPTED] == 0, [o for _, o in outcomes if o.kind == CORRUPTED][:5]
