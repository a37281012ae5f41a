"""EcuClient against the real device agent (MicroPython unix port) over real ptys."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from typing import Any

import cbor2
import pytest
from otalink.host.gateway.ecu import (
    DEV_COMMAND_SEED,
    EcuClient,
    EcuLinkError,
    EcuProtocolError,
    EcuRejected,
    SerialTransport,
    segments,
)
from otalink.host.gateway.ecu.info import EcuInfo
from otalink.host.gateway.ecu.wire import End, encode
from otalink.host.keys import KeyPair
from otalink.host.sim.ecusim import build_bundle
from otalink.host.sim.line.rig import EcuRig
from otalink.protocol import codes, messages

from tests.gateway.ecu._peer import Peer
from tests.gateway.ecu.conftest import RigFactory


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


# ---- defect 1: another stream of the same instruction --------------------------------------------
def _text_image(n: int) -> bytes:
    words = [b"flash", b"slot", b"ecu", b"verify", b"otalink", b"segment", b"trial", b"boot"]
    out = bytearray()
    i = 0
    while len(out) < n:
        out += words[(i * 7 + i // 5) % len(words)] + b" %d\n" % (i % 997)
        i += 1
    return bytes(out[:n])


class _Interrupted(Exception):
    pass


def test_interrupted_plain_install_then_compressed_install_succeeds(rig: EcuRig) -> None:
    # Before: "ACK offset beyond the stream", every time (the device kept the plain stream's
    # offset for the compressed stream of the same instruction).
    image = _text_image(80_000)
    instr, sigs = rig.instruction(image)
    c = rig.client()

    def stop_half_way(done: int, total: int) -> None:
        if done >= total // 2:
            raise _Interrupted

    with pytest.raises(_Interrupted):
        c.install(instr, sigs, image, compress=False, progress=stop_half_way)
    assert c.status().transfer.wire_offset >= len(image) // 2  # the device kept its transfer
    r = c.install(instr, sigs, image, compress=True)
    assert r.compression == codes.COMP_DEFLATE_SEG and r.wire_bytes < len(image) // 2
    assert r.resumed_from == 0 and c.begin_acks == [0]
    st = c.status()
    assert st.inactive.state == codes.SLOT_VERIFIED and st.inactive.sha256 == r.sha256
    assert rig.slot_bytes(st.active_slot ^ 1, len(image)) == image
    # and back: an interrupted compressed install, then a plain one (another client)
    image2 = _text_image(70_000)[::-1]
    instr2, sigs2 = rig.instruction(image2, release_counter=3)
    with pytest.raises(_Interrupted):
        c.install(instr2, sigs2, image2, compress=True, progress=stop_half_way)
    c2 = rig.client()
    r2 = c2.install(instr2, sigs2, image2, compress=False)
    assert r2.compression == codes.COMP_NONE and r2.resumed_from == 0
    assert rig.slot_bytes(c2.status().active_slot ^ 1, len(image2)) == image2


# ---- defect 4: recovery is bounded on malformed INFO too ----------------------------------------
def test_recovery_gives_up_on_a_peer_whose_info_is_out_of_profile() -> None:
    # The peer answers every HELLO with the right nonce and a body outside the profile. Before:
    # _recover retried EcuProtocolError forever (66,000 HELLOs in 20 s with a 3 s timeout).
    def answer(m: list[Any]) -> list[bytes]:
        if m[0] == codes.MSG_HELLO:
            body = cbor2.dumps([2, "ecu", "hw", bytes(m[2]), 0])  # right nonce, not a report
            return [messages.info(body, bytes(64))]
        return []

    peer = Peer(answer)
    c = EcuClient(peer.port, timeout=0.3, recover_timeout=1.0, command_key=DEV_COMMAND_SEED)
    out: list[BaseException | str] = []

    def run() -> None:
        try:
            c.install(b"\x01", [], b"x" * 100)
            out.append("returned")
        except BaseException as exc:  # the test inspects it
            out.append(exc)

    t0 = time.monotonic()
    th = threading.Thread(target=run, daemon=True)
    th.start()
    th.join(15)
    try:
        assert not th.is_alive(), f"install() still retrying after 15 s ({peer.count(1)} HELLOs)"
        assert time.monotonic() - t0 < 6
        assert isinstance(out[0], EcuProtocolError), out
        assert "recover_timeout" in str(out[0]) and out[0].wire_code == codes.E_BAD_MESSAGE
        assert 1 <= peer.count(codes.MSG_HELLO) < 100  # paced, not a flood
    finally:
        c.close()
        peer.close()


# ---- defect 10: replies are tied to their requests ---------------------------------------------
def _report_body(nonce: bytes, cmd_nonce: bytes = bytes(16)) -> bytes:
    return bytes(
        messages.encode_report(
            "ecu-1", "hw-1", nonce, 0, codes.BOOT_NORMAL, codes.OK,
            [[codes.SLOT_CONFIRMED, "1.0", 1, 10, bytes(32)], [codes.SLOT_EMPTY, "", 0, 0, b""]],
            [4096, 8192, 65536, 4096, 4, 10, 1], [codes.PH_IDLE, 0, 0, 0], 1, 0, 0, cmd_nonce,
        )
    )  # fmt: skip


def test_late_replies_never_answer_the_next_request() -> None:
    # The soak failure: status() after a faulted transfer took ERROR(E_BAD_STATE, END) -- the
    # answer to a repeated END -- for the answer to STATUS_REQ. Here the peer puts every kind of
    # late reply in front of each answer; the client must take only the one for its request.
    nonce_now = bytes(range(16))

    def stale() -> list[bytes]:
        return [
            messages.error(codes.E_BAD_STATE, codes.MSG_END, codes.MSG_END),
            messages.error(codes.E_OUT_OF_WINDOW, 4096, codes.MSG_DATA),
            messages.error(codes.E_BAD_MESSAGE, 0, 0),
            messages.result(codes.MSG_END, codes.E_WIRE_LENGTH, 7, bytes(16)),
            messages.result(codes.MSG_ABORT, codes.OK, 0, bytes(16)),
            messages.status(_report_body(bytes(16)), bytes(64)),  # another nonce
            messages.ack(0, 4096, codes.PH_RECEIVING),
        ]

    def answer(m: list[Any]) -> list[bytes]:
        t = m[0]
        if t == codes.MSG_STATUS_REQ:
            return [*stale(), messages.status(_report_body(bytes(m[1]), nonce_now), bytes(64))]
        if t in (codes.MSG_ACTIVATE, codes.MSG_CONFIRM):
            return [*stale(), messages.result(t, codes.OK, 0, bytes(16))]
        return []

    peer = Peer(answer)
    c = EcuClient(peer.port, timeout=1.0, command_key=DEV_COMMAND_SEED)
    try:
        nonce = os.urandom(16)
        info = c.status(nonce)
        assert info.nonce == nonce and info.cmd_nonce == nonce_now
        assert c.stale_replies >= 7
        before = c.stale_replies
        assert c.activate() == 0  # the RESULT for ACTIVATE, not the ABORT / END ones before it
        assert c.stale_replies >= before + 7
        sent = [m for m in peer.seen if m[0] == codes.MSG_ACTIVATE]
        assert len(sent) == 1
        assert messages.decode_command(sent[0][1])[messages.CM_NONCE] == nonce_now
        # the RESULT's nonce is the next command's
        c.confirm()
        sent = [m for m in peer.seen if m[0] == codes.MSG_CONFIRM]
        assert messages.decode_command(sent[0][1])[messages.CM_NONCE] == bytes(16)
    finally:
        c.close()
        peer.close()


def test_a_late_error_from_the_real_agent_is_dropped(rig_factory: RigFactory) -> None:
    # Against the real agent: an END the device refuses (no transfer), answered late on a slow
    # line, then STATUS_REQ at once. Before: status() raised EcuRejected(E_BAD_STATE).
    rig = rig_factory(baud=115200, latency_s=0.08)
    c = rig.client(timeout=2.0)
    c.hello()
    c.transport.write(encode(End(1000)))  # a repeated END, its answer on the way
    info = c.status()
    assert info.ecu_id == rig.ecu_id
    assert c.stale_replies >= 1


# ---- issue 11 on the same line: the receive probe and the application channel -----------------
def test_receive_probe_against_the_real_agent(rig: EcuRig) -> None:
    c = rig.client()
    before = c.hello()
    image = _text_image(30_000)
    r = c.probe(image, compress=True)
    assert r.ok, r
    assert r.compression == codes.COMP_DEFLATE_SEG and r.decoded_len == len(image)
    after = c.status()
    assert after.slots == before.slots  # a probe writes no slot
    # a probe is refused while a transfer is live
    instr, sigs = rig.instruction(image)

    def stop(done: int, total: int) -> None:
        raise _Interrupted

    with pytest.raises(_Interrupted):
        c.install(instr, sigs, image, compress=False, progress=stop)
    with pytest.raises(EcuRejected) as ei:
        c.probe(image)
    assert ei.value.wire_code == codes.E_BUSY


def test_app_request_without_an_application_is_refused(rig: EcuRig) -> None:
    c = rig.client()
    with pytest.raises(EcuRejected) as ei:
        c.app(1, b"soc?")
    assert ei.value.wire_code == codes.E_APP_CHANNEL and ei.value.detail == 1
    assert c.status().ecu_id == rig.ecu_id  # the session goes on
