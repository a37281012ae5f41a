"""One faulted transfer through a LineSim to the real agent, judged like the issue asks:
the image ends byte-exact in the slot (signed STATUS hash + the flash file), or the client
raises a clear EcuError after which a retry on a clean line completes; a corrupted image is never
verified nor activated."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from otalink.host.gateway.ecu import EcuError
from otalink.host.sim.line import FaultConfig
from otalink.host.sim.line.rig import EcuRig
from otalink.protocol import codes

COMPLETED = "completed"
FAILED_CLEANLY = "failed_cleanly"
CORRUPTED = "corrupted"


@dataclass
class Outcome:
    kind: str
    detail: str
    seconds: float
    retransmitted: int = 0
    reconnects: int = 0


def _slot_ok(rig: EcuRig, image: bytes, activate: bool) -> str:
    """'' if the inactive slot holds exactly ``image`` (signed report + flash), else why not."""
    sha = hashlib.sha256(image).digest()
    c = rig.client()
    try:
        st = c.status()
        slot_no = st.active_slot ^ 1
        slot = st.slots[slot_no]
        if slot.state != codes.SLOT_VERIFIED or slot.sha256 != sha or slot.image_len != len(image):
            return f"STATUS slot {slot_no}: state {slot.state}, sha {slot.sha256.hex()[:16]}"
        if rig.slot_bytes(slot_no, len(image)) != image:
            return f"flash slot {slot_no} differs from the image"
        if activate:
            c.activate()  # (a signed command: the rig's command key)
            st = c.status()
            pend = st.slots[slot_no]
            if pend.state != codes.SLOT_PENDING or pend.sha256 != sha:
                return f"after ACTIVATE slot {slot_no}: state {pend.state}"
        return ""
    finally:
        c.close()


def faulted_transfer(
    rig: EcuRig,
    image: bytes,
    release_counter: int,
    faults: FaultConfig | None = None,
    action: Callable[[EcuRig], None] | None = None,
    action_after: int = 0,
    timeout: float = 2.0,
    recover_timeout: float = 60.0,
    activate: bool = False,
) -> Outcome:
    """Install ``image`` with ``faults`` on the line and ``action`` (disconnect, stall, reset)
    fired once ``action_after`` bytes reached the device; judge the result."""
    instr, sigs = rig.instruction(
        image, version=f"v{release_counter}", release_counter=release_counter
    )
    if faults is not None:
        rig.sim.faults = faults
    fired = threading.Event()
    if action is not None:
        start = rig.sim.delivered_h2d

        def fire() -> None:
            end = time.monotonic() + 120
            while rig.sim.delivered_h2d - start < action_after and time.monotonic() < end:
                time.sleep(0.002)
            assert action is not None
            action(rig)
            fired.set()

        threading.Thread(target=fire, daemon=True).start()
    c = rig.client(timeout=timeout, recover_timeout=recover_timeout)
    t0 = time.monotonic()
    error: EcuError | None = None
    result = None
    try:
        result = c.install(instr, sigs, image)
    except EcuError as exc:
        error = exc
    finally:
        c.close()
    seconds = time.monotonic() - t0
    if action is not None:
        fired.wait(130)
    rig.sim.faults = FaultConfig()
    rig.sim.reconnect()
    if error is None:
        assert result is not None
        why = _slot_ok(rig, image, activate)
        if why:
            return Outcome(CORRUPTED, f"verified but {why}", seconds)
        return Outcome(COMPLETED, "", seconds, result.retransmitted_bytes, result.reconnects)
    # A clear error: nothing corrupted may be verified, and a retry on a clean line completes.
    st = rig.client().status()
    bad = st.inactive
    if bad.state == codes.SLOT_VERIFIED and bad.sha256 != hashlib.sha256(image).digest():
        return Outcome(CORRUPTED, f"error {error} left a verified foreign slot", seconds)
    c = rig.client()
    c.install(instr, sigs, image)
    c.close()
    why = _slot_ok(rig, image, activate)
    if why:
        return Outcome(CORRUPTED, f"retry after {error}: {why}", seconds)
    return Outcome(FAILED_CLEANLY, str(error), seconds)
