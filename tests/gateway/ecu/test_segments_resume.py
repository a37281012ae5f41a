"""Compressed transfers as deflate segments (compression 2) against the real agent behind LineSim:
a device reset mid-transfer resumes at a segment end, not at 0; an old device gets plain deflate."""

from __future__ import annotations

import dataclasses
import random
import threading
import time

from otalink.host.gateway.ecu import segments
from otalink.host.sim.line.rig import EcuRig
from otalink.protocol import codes

from tests.gateway.ecu.conftest import RigFactory


def _text_image(n: int, seed: int) -> bytes:
    # compresses ~2x: several segments on the wire, each a few KiB
    rnd = random.Random(seed)
    words = [
        bytes(rnd.choices(b"abcdefghijklmnopqrstuvwxyz", k=rnd.randint(2, 9))) for _ in range(400)
    ]
    out = bytearray()
    while len(out) < n:
        out += rnd.choice(words) + b" "
    return bytes(out[:n])


def test_device_announces_segments_and_the_client_uses_them(rig: EcuRig) -> None:
    c = rig.client()
    caps = c.hello().caps
    assert caps.flags & codes.CAP_DEFLATE_SEG and caps.deflate_wbits >= 9
    image = _text_image(70_000, 1)
    wire, comp = c.prepare_stream(image, True)
    assert comp == codes.COMP_DEFLATE_SEG
    assert segments.decode(wire, min(caps.deflate_wbits, 15)) == image
    assert len(segments.boundaries(wire)) == 5  # 4 x 16 KiB + the rest


def test_reset_mid_transfer_resumes_at_a_segment_end(rig_factory: RigFactory) -> None:
    rig = rig_factory(baud=921600)
    c = rig.client(timeout=0.5)
    image = _text_image(200_000, 2)
    instr, sigs = rig.instruction(image)
    wbits = min(c.hello().caps.deflate_wbits, 15)
    wire, comp = c.prepare_stream(image, True)
    assert comp == codes.COMP_DEFLATE_SEG
    ends = segments.boundaries(wire, wbits)
    assert len(ends) >= 10
    cut_at = len(wire) // 2
    boots = rig.proc.boots

    def cut() -> None:
        while rig.sim.delivered_h2d < cut_at:
            time.sleep(0.002)
        rig.reset()  # SIGKILL the agent mid-transfer; the supervisor boots it again

    t = threading.Thread(target=cut)
    t.start()
    r = c.install(instr, sigs, image, compress=True)
    t.join()
    assert rig.proc.boots == boots + 1
    assert r.compression == codes.COMP_DEFLATE_SEG and r.wire_bytes == len(wire)
    assert r.reconnects >= 1
    # the first BEGIN started at 0; the BEGIN after the reboot resumed at a durable segment end
    assert c.begin_acks[0] == 0 and len(c.begin_acks) >= 2
    resumed = c.begin_acks[-1]
    print(f"resume offset after reboot: {resumed} of {len(wire)} wire bytes")
    assert resumed > 0
    assert resumed in {w for w, _img in ends[:-1]}
    st = c.status()
    assert st.inactive.state == codes.SLOT_VERIFIED
    assert rig.slot_bytes(st.active_slot ^ 1, len(image)) == image


def test_old_device_without_the_flag_gets_plain_deflate(rig: EcuRig) -> None:
    c = rig.client()
    info = c.hello()
    # what a device from before compression 2 reports: the same caps with flags 0
    c.session.info = dataclasses.replace(info, caps=dataclasses.replace(info.caps, flags=0))
    image = _text_image(50_000, 3)
    instr, sigs = rig.instruction(image)
    r = c.install(instr, sigs, image, compress=True)
    assert r.compression == codes.COMP_DEFLATE and r.wire_bytes < len(image) * 0.6
    assert c.begin_acks == [0]
    st = c.status()
    assert rig.slot_bytes(st.active_slot ^ 1, len(image)) == image
