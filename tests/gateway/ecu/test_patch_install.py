"""Delta updates end to end over real ptys: the host's uploader sends a detools patch (compression
3 raw / 4 in deflate segments) and the real MicroPython ECU applies it to its active slot.

Full v1 installed and confirmed, then v2 as a patch (INFO shows v2 after confirm); a base
mismatch refused with E_BASE_MISMATCH and the full image accepted under the same instruction (the
fallback); a format-1 instruction refused for a patch; a patch for another hardware id refused; a
corrupted patch byte caught before activation; the signed patch replayed after its release is
confirmed refused (E_ROLLBACK); resume after a link loss and after a reset mid-patch (from the
durable checkpoint, not from zero).
"""

from __future__ import annotations

import hashlib
import random
import threading
import time

import pytest
from otalink.host.gateway.ecu import EcuClient, EcuRejected
from otalink.host.gateway.ecu.uploader import Patch
from otalink.host.sim.ecusim import build_bundle
from otalink.host.sim.line.rig import EcuRig
from otalink.protocol import codes, messages

from tests.delta.pairs import binary_like, make_patch, ref_apply
from tests.gateway.ecu.conftest import RigFactory

# A patch transfer's working set: the applier (device/delta.py, slotpatch.py) and the names they
# intern on top of a full image's; its live peak is ~80 KB on the unix port today (the memtrace;
# bench_delta's delta.peak_heap_bytes / patch_heap_limit_bytes measure the whole delta update,
# delta.apply_peak_heap_bytes the applier alone), over the 80k a full image runs in, so these
# agents get 96k.
PATCH_HEAP = "96k"


def _bundles(seed: int, n: int) -> tuple[bytes, bytes]:
    # two releases of one application: v2 changes a few bytes, inserts a block and appends
    rnd = random.Random(seed)
    blob = bytearray(binary_like(rnd, n))
    v1 = build_bundle(
        {
            "app.py": b"VERSION = '1.0.0'\n\ndef selftest():\n    return True\n",
            "blob.py": bytes(blob),
        },
        "app",
        "app.selftest",
    )
    for _ in range(30):
        blob[rnd.randrange(len(blob))] ^= 0x24
    blob[n // 3 : n // 3] = binary_like(rnd, 700)
    blob += binary_like(rnd, 3000)
    v2 = build_bundle(
        {
            "app.py": b"VERSION = '2.0.0'\n\ndef selftest():\n    return True\n",
            "blob.py": bytes(blob),
        },
        "app",
        "app.selftest",
    )
    return v1, v2


def _instr(
    rig: EcuRig, image: bytes, version: str, rc: int, base: bytes | None, hw_id: str | None = None
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    now = int(time.time())
    instr = bytes(
        messages.encode_instruction(
            rig.ecu_id, hw_id or rig.hw_id, version, rc, len(image),
            hashlib.sha256(image).digest(), now - 60, now + 86400, f"app-{version}", 0, base,
        )
    )  # fmt: skip
    return instr, [(rig.director.keyid, rig.director.sign(instr))]


def _install_confirmed(c: EcuClient, rig: EcuRig, image: bytes, version: str, rc: int) -> None:
    instr, sigs = _instr(rig, image, version, rc, None)
    c.install(instr, sigs, image)
    c.activate()
    c.reboot()
    assert c.hello().boot_state == codes.BOOT_TRIAL
    c.confirm()
    assert c.status().active.version == version


def _patch(v1: bytes, v2: bytes, data: bytes | None = None) -> Patch:
    return Patch(
        data if data is not None else make_patch(v1, v2), len(v2), hashlib.sha256(v2).digest()
    )


def _rejected(fn: object, *a: object, **kw: object) -> EcuRejected:
    with pytest.raises(EcuRejected) as exc:
        fn(*a, **kw)  # type: ignore[operator]
    return exc.value


def test_patch_install_mismatch_fallback_and_refusals(rig_factory: RigFactory) -> None:
    rig = rig_factory(heapsize=PATCH_HEAP)
    c = rig.client()
    assert c.hello().caps.flags & codes.CAP_PATCH
    v1, v2 = _bundles(1, 40_000)
    _install_confirmed(c, rig, v1, "1.0.0", 2)
    v1_sha = hashlib.sha256(v1).digest()
    patch = _patch(v1, v2)
    assert ref_apply(v1, patch.data) == v2

    # the instruction binds another base: refused before anything is erased, then the full image
    # under the very same instruction is the fallback
    instr, sigs = _instr(rig, v2, "2.0.0", 3, hashlib.sha256(b"another base").digest())
    e = _rejected(c.install, instr, sigs, patch)
    assert (e.wire_code, e.detail) == (codes.E_BASE_MISMATCH, 1)
    assert c.status().inactive.state != codes.SLOT_RECEIVING
    r = c.install(instr, sigs, v2)
    assert r.compression in (codes.COMP_NONE, codes.COMP_DEFLATE_SEG)
    assert c.status().inactive.state == codes.SLOT_VERIFIED
    c.abort()

    # a format-1 instruction binds no base: no patch under it
    instr, sigs = _instr(rig, v2, "2.0.0", 3, None)
    e = _rejected(c.install, instr, sigs, patch)
    assert (e.wire_code, e.detail) == (codes.E_BASE_MISMATCH, 0)

    # a patch for another hardware id: the instruction's checks refuse it
    instr, sigs = _instr(rig, v2, "2.0.0", 3, v1_sha, hw_id="hw-other")
    assert _rejected(c.install, instr, sigs, patch).wire_code == codes.E_HW_MISMATCH

    # a corrupted patch byte (raw and in segments): caught before activation
    instr, sigs = _instr(rig, v2, "2.0.0", 3, v1_sha)
    for compress, at in ((False, len(patch.data) // 2), (False, 7), (None, len(patch.data) // 3)):
        bad = bytearray(patch.data)
        bad[at] ^= 0x41
        e = _rejected(c.install, instr, sigs, _patch(v1, v2, bytes(bad)), compress=compress)
        assert e.wire_code in (codes.E_PATCH, codes.E_HASH_MISMATCH, codes.E_DECOMPRESS), e
        st = c.status()
        assert st.inactive.state != codes.SLOT_VERIFIED
        assert _rejected(c.activate).wire_code == codes.E_NO_IMAGE

    # the patch itself, in deflate segments: v2 verified, activated, confirmed
    r = c.install(instr, sigs, patch)
    assert r.compression == codes.COMP_PATCH_DEFLATE_SEG
    assert r.image_bytes == len(v2) and r.wire_bytes < len(v2) // 5
    st = c.status()
    assert st.inactive.state == codes.SLOT_VERIFIED
    assert rig.slot_bytes(st.active_slot ^ 1, len(v2)) == v2
    c.activate()
    c.reboot()
    assert c.hello().boot_state == codes.BOOT_TRIAL
    c.confirm()
    info = c.hello()
    assert info.active.version == "2.0.0" and info.active.state == codes.SLOT_CONFIRMED

    # the same signed patch again (a replay, or a rollback to an older patch): the release floor
    # refuses it before the base is even looked at
    assert _rejected(c.install, instr, sigs, patch).wire_code == codes.E_ROLLBACK


def test_patch_resumes_after_link_loss_and_reset(rig_factory: RigFactory) -> None:
    rig = rig_factory(baud=921600, heapsize=PATCH_HEAP)
    c = rig.client(timeout=0.5)
    v1, v2 = _bundles(2, 150_000)
    _install_confirmed(c, rig, v1, "1.0.0", 2)
    patch = _patch(v1, v2)
    instr, sigs = _instr(rig, v2, "2.0.0", 3, hashlib.sha256(v1).digest())

    # link loss mid-patch: the RAM state resumes exactly where the ACKs were
    start = rig.sim.delivered_h2d

    def lose() -> None:
        while rig.sim.delivered_h2d < start + len(patch.data) // 3:
            time.sleep(0.002)
        rig.sim.disconnect()
        time.sleep(1.5)
        rig.sim.reconnect()

    t = threading.Thread(target=lose)
    t.start()
    r = c.install(instr, sigs, patch, compress=False)
    t.join()
    assert r.compression == codes.COMP_PATCH and r.reconnects >= 1
    assert c.begin_acks[0] == 0 and max(c.begin_acks[1:]) > 0
    assert rig.slot_bytes(c.status().active_slot ^ 1, len(v2)) == v2
    c.abort()

    # a reset mid-patch: the next BEGIN resumes from the durable checkpoint, not from zero
    delivered = rig.sim.delivered_h2d
    boots = rig.proc.boots

    def cut() -> None:
        while rig.sim.delivered_h2d < delivered + len(patch.data) // 2:
            time.sleep(0.002)
        rig.reset()

    t = threading.Thread(target=cut)
    t.start()
    r = c.install(instr, sigs, patch, compress=False)
    t.join()
    assert rig.proc.boots == boots + 1
    assert c.begin_acks[0] == 0 and len(c.begin_acks) >= 2
    resumed = c.begin_acks[-1]
    print(f"patch resumed after the reset at {resumed} of {len(patch.data)} bytes")
    assert resumed > 0
    st = c.status()
    assert st.inactive.state == codes.SLOT_VERIFIED
    assert rig.slot_bytes(st.active_slot ^ 1, len(v2)) == v2
