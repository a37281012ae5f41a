"""EcuClient against the real device agent (MicroPython unix port) over real ptys."""

from __future__ import annotations

import hashlib
import os
import threading
import time

import pytest
from otalink.host.ecu import EcuClient, EcuLinkError, EcuRejected, SerialTransport, segments
from otalink.host.ecu.info import EcuInfo
from otalink.host.ecusim import build_bundle
from otalink.host.keys import KeyPair
from otalink.host.line.rig import EcuRig
from otalink.protocol import codes

from tests.ecu.conftest import RigFactory


def test_hello_returns_a_signed_report(rig: EcuRig) -> None:
    c = rig.client()
    nonce = os.urandom(16)
    info = c.hello(nonce)
    assert info.ecu_id == rig.ecu_id and info.hw_id == rig.hw_id
    assert info.nonce == nonce
    info.verify(rig.ecu_key.public)
    assert info.caps.max_payload >= codes.MIN_PAYLOAD and info.caps.window > 0
    # a different key, or one flipped byte of the exact body, fails verification
    with pytest.raises(EcuRejected) as exc:
        info.verify(KeyPair.generate().public)
    assert exc.value.wire_code == codes.E_SIG_INVALID
    body = bytearray(info.body)
    body[-1] ^= 1
    tampered = EcuInfo.from_wire(bytes(body), info.sig)
    with pytest.raises(EcuRejected):
        tampered.verify(rig.ecu_key.public)


def test_install_writes_the_exact_image(rig: EcuRig) -> None:
    c = rig.client()
    image = os.urandom(40_000)
    instr, sigs = rig.instruction(image)
    seen: list[tuple[int, int]] = []
    r = c.install(instr, sigs, image, progress=lambda done, total: seen.append((done, total)))
    assert r.image_bytes == len(image) and r.compression == codes.COMP_NONE
    assert r.wire_bytes == len(image) and r.tx_bytes > len(image) and r.rx_bytes > 0
    assert r.sha256 == hashlib.sha256(image).digest()
    assert seen[-1] == (len(image), len(image))
    st = c.status()
    slot = st.inactive
    assert slot.state == codes.SLOT_VERIFIED and slot.sha256 == r.sha256
    assert rig.slot_bytes(st.active_slot ^ 1, len(image)) == image


def test_compression_used_when_it_helps(rig: EcuRig) -> None:
    c = rig.client()
    image = (b"otalink firmware " * 4000)[:60_000]
    instr, sigs = rig.instruction(image)
    r = c.install(instr, sigs, image)
    # the agent announces CAP_DEFLATE_SEG: resumable deflate segments
    assert r.compression == codes.COMP_DEFLATE_SEG and r.wire_bytes < len(image) // 4
    st = c.status()
    assert rig.slot_bytes(st.active_slot ^ 1, len(image)) == image
    # random bytes do not compress: sent raw even with compress=None
    noise = os.urandom(8000)
    instr, sigs = rig.instruction(noise, release_counter=3)
    assert c.install(instr, sigs, noise).compression == codes.COMP_NONE


def test_forced_compression_respects_the_device_window(rig: EcuRig) -> None:
    c = rig.client()
    wbits = c.hello().caps.deflate_wbits
    image = bytes(range(256)) * 200
    stream, comp = c.prepare_stream(image, True)
    assert comp == codes.COMP_DEFLATE_SEG
    # every segment inflates with a decoder of exactly the device's window
    assert segments.decode(stream, wbits) == image


def test_wrong_signer_is_rejected_and_nothing_is_written(rig: EcuRig) -> None:
    c = rig.client()
    image = os.urandom(5000)
    instr, sigs = rig.instruction(image, signer=KeyPair.generate())
    with pytest.raises(EcuRejected) as exc:
        c.install(instr, sigs, image)
    assert exc.value.wire_code in (codes.E_KEY_UNKNOWN, codes.E_SIG_INVALID)
    assert c.status().inactive.state != codes.SLOT_VERIFIED
    # the same client then installs a properly signed instruction
    instr, sigs = rig.instruction(image)
    assert c.install(instr, sigs, image).image_bytes == len(image)


def test_wrong_ecu_is_rejected(rig: EcuRig) -> None:
    c = rig.client()
    image = os.urandom(3000)
    instr, sigs = rig.instruction(image, ecu_id="someone-else")
    with pytest.raises(EcuRejected) as exc:
        c.install(instr, sigs, image)
    assert exc.value.wire_code == codes.E_ECU_MISMATCH
    assert exc.value.code == "ecu_rejected.e_ecu_mismatch"


def test_resume_after_disconnect_continues_from_the_device_offset(rig_factory: RigFactory) -> None:
    rig = rig_factory(baud=921600)
    c = rig.client(timeout=0.5)
    image = os.urandom(120_000)
    instr, sigs = rig.instruction(image)

    def cut() -> None:
        while rig.sim.delivered_h2d < 50_000:
            time.sleep(0.005)
        rig.sim.disconnect()
        time.sleep(1.5)  # longer than the reply timeout: the client must re-HELLO
        rig.sim.reconnect()

    t = threading.Thread(target=cut)
    t.start()
    r = c.install(instr, sigs, image)
    t.join()
    assert r.reconnects >= 1
    assert rig.slot_bytes(c.status().active_slot ^ 1, len(image)) == image


def test_second_session_resumes_an_interrupted_transfer(rig_factory: RigFactory) -> None:
    rig = rig_factory(baud=921600)
    image = os.urandom(150_000)
    instr, sigs = rig.instruction(image)
    c1 = rig.client(timeout=0.5, recover_timeout=1.0)

    def cut() -> None:
        while rig.sim.delivered_h2d < 60_000:
            time.sleep(0.005)
        rig.sim.disconnect()

    threading.Thread(target=cut).start()
    with pytest.raises(EcuLinkError):
        c1.install(instr, sigs, image)
    c1.close()
    rig.sim.reconnect()
    c2 = rig.client()
    r = c2.install(instr, sigs, image)
    assert r.resumed_from > 0  # the durable offset the device kept
    assert r.wire_bytes - r.resumed_from < len(image)
    assert rig.slot_bytes(c2.status().active_slot ^ 1, len(image)) == image


def test_activate_reboot_confirm_a_real_bundle(rig: EcuRig) -> None:
    c = rig.client()
    app = b"VERSION = '2.0.0'\n\ndef selftest():\n    return True\n"
    bundle = build_bundle({"app.py": app}, "app", "app.selftest")
    instr, sigs = rig.instruction(bundle, version="2.0.0", release_counter=5)
    c.install(instr, sigs, bundle)
    before = c.status().active_slot
    c.activate()
    c.reboot()
    info = c.hello()  # the agent restarted (exit 64, the runner starts it again)
    assert info.boot_state == codes.BOOT_TRIAL and info.active_slot == before ^ 1
    c.confirm()
    st = c.status()
    assert st.active.state == codes.SLOT_CONFIRMED and st.active.version == "2.0.0"
    assert st.release_floor == 5


def test_loop_url_without_a_device_is_a_link_error() -> None:
    # loop:// echoes our own frames back: never an INFO, so the client reports a link error
    c = EcuClient(transport=SerialTransport("loop://", write_timeout=0.5), timeout=0.2)
    with pytest.raises(EcuLinkError) as exc:
        c.hello()
    assert exc.value.wire_code == codes.E_TIMEOUT
    c.close()


def test_unopenable_port_is_a_link_error() -> None:
    with pytest.raises(EcuLinkError):
        EcuClient("/dev/does-not-exist-otalink")
