"""The whole update against the real agent, and resume after link loss."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

import nacl.exceptions
import nacl.signing
from otalink.protocol import codes, messages

from tests.device_session._agent import Ecu, app_bundle
from tests.device_session.conftest import Installed

R = messages


def test_full_update_signed_status(ecu: Ecu, installed_v1: Installed) -> None:
    image = app_bundle("2.0.0", pad=40000)
    status = ecu.install(image, "2.0.0", 2)
    # the new slot runs, confirmed, with its version, and the floor moved up
    act = status[R.R_SLOTS][status[R.R_ACTIVE_SLOT]]
    assert status[R.R_ACTIVE_SLOT] != installed_v1.status[R.R_ACTIVE_SLOT]
    assert act[R.S_STATE] == codes.SLOT_CONFIRMED and act[R.S_VERSION] == "2.0.0"
    assert act[R.S_SHA256] == hashlib.sha256(image).digest()
    assert status[R.R_RELEASE_FLOOR] == 2 and status[R.R_BOOT_STATE] == codes.BOOT_NORMAL
    # STATUS answers a fresh nonce, signed by the ECU's own key over the exact body bytes
    nonce = os.urandom(16)
    body, raw, sig = ecu.status(nonce)
    assert body[R.R_NONCE] == nonce and body[R.R_ECU_ID] == "bms-1"
    vk = nacl.signing.VerifyKey(ecu.ecu_key.public)
    vk.verify(raw, sig)  # raises on a bad signature
    forged = bytearray(raw)
    forged[raw.index(b"2.0.0")] ^= 1
    try:
        vk.verify(bytes(forged), sig)
        raise AssertionError("a changed body must not verify")
    except nacl.exceptions.BadSignatureError:
        pass
    # a second STATUS with another nonce is a different, freshly signed report
    _body2, raw2, sig2 = ecu.status(os.urandom(16))
    assert raw2 != raw and sig2 != sig
    vk.verify(raw2, sig2)


def test_resume_after_link_loss(
    installed_v1: Installed, micropython: str, mpy_tree: Path, tmp_path: Path
) -> None:
    shutil.copy(installed_v1.flash, tmp_path / "flash.bin")
    ecu = Ecu(
        tmp_path,
        micropython,
        mpy_tree,
        director=installed_v1.director,
        ecu_key=installed_v1.ecu_key,
        flash=tmp_path / "flash.bin",
        extra={"idle_ms": 300},
    )
    image = app_bundle("2.0.0", pad=60000)
    try:
        ecu.start()
        ecu.hello()
        instr = ecu.instruction(image)
        ack = ecu.begin(image, instr=instr)
        assert ack[:2] == [codes.MSG_ACK, 0]
        acked = 0
        c = 2000
        for off in range(0, 30000, c):
            r = ecu.request(messages.data(off, image[off : off + c]))
            assert r[:2] == [codes.MSG_ACK, off + c], r
            acked = r[1]
        # mid-transfer STATUS reports the transfer with every acknowledged byte
        body, _, _ = ecu.status()
        assert body[R.R_TRANSFER][R.T_PHASE] == codes.PH_RECEIVING
        assert body[R.R_TRANSFER][R.T_WIRE_OFFSET] == acked == 30000
        # the line goes quiet (gateway lost the link) past the device's idle timeout
        time.sleep(0.8)
        r = ecu.request(messages.data(acked, image[acked : acked + c]))
        assert r[:2] == [codes.MSG_ERROR, codes.E_BAD_STATE], r  # session fell back to IDLE
        # reconnect: HELLO shows the durable transfer, BEGIN again resumes where the ACKs were
        info = messages.decode_report(ecu.hello()[1])
        assert info[R.R_TRANSFER][R.T_PHASE] == codes.PH_RECEIVING
        assert info[R.R_TRANSFER][R.T_WIRE_OFFSET] == acked
        # The same instruction with other BEGIN fields is not the live transfer: every check
        # runs again (the instruction's hash / length bind the image)
        r = ecu.begin(image, instr=instr, sha256=bytes(32))
        assert r[:2] == [codes.MSG_ERROR, codes.E_HASH_MISMATCH], r
        r = ecu.begin(image, instr=instr, image_len=len(image) - 1)
        assert r[:2] == [codes.MSG_ERROR, codes.E_LENGTH_MISMATCH], r
        # the same instruction and fields resume the live transfer: nothing is asked again
        ack = ecu.begin(image, instr=instr)
        assert ack[:2] == [codes.MSG_ACK, acked], ack  # no acknowledged byte is asked again
        sent_from = ack[1]
        assert ecu.send_data(image, sent_from) == len(image)
        r = ecu.request(messages.end(len(image)), timeout=30)
        assert r[:4] == [codes.MSG_RESULT, codes.MSG_END, codes.OK, 0], r
        r = ecu.cmd(codes.MSG_ACTIVATE)
        assert r[2] == codes.OK
    finally:
        ecu.close()


def test_resume_after_reset_mid_transfer(ecu: Ecu) -> None:
    image = app_bundle("2.0.0", pad=60000)
    instr = ecu.instruction(image)
    ack = ecu.begin(image, instr=instr)
    assert ack[:2] == [codes.MSG_ACK, 0]
    c = 2000
    acked = 0
    for off in range(0, 20 * c, c):
        r = ecu.request(messages.data(off, image[off : off + c]))
        acked = r[1]
    assert acked == 20 * c
    info = messages.decode_report(ecu.reboot()[1])
    durable = info[R.R_TRANSFER][R.T_WIRE_OFFSET]
    # the durable offset is a checkpoint (Slots: erase-sector boundaries) at or below the ACKs
    assert 0 < durable <= acked and durable % 4096 == 0, (durable, acked)
    ack = ecu.begin(image, instr=instr)
    assert ack[:2] == [codes.MSG_ACK, durable], ack
    assert ecu.send_data(image, durable) == len(image)
    r = ecu.request(messages.end(len(image)), timeout=30)
    assert r[:4] == [codes.MSG_RESULT, codes.MSG_END, codes.OK, 0], r


def test_deflate_transfer(ecu: Ecu) -> None:
    import zlib

    info = messages.decode_report(ecu.hello()[1])
    wbits = info[R.R_CAPS][R.C_DEFLATE_WBITS]
    assert wbits > 0
    image = app_bundle("2.0.0", pad=30000) + bytes(20000)  # compressible tail
    c = zlib.compressobj(9, zlib.DEFLATED, -wbits)
    wire = c.compress(image) + c.flush()
    assert len(wire) < len(image)
    ack = ecu.begin(image, compression=codes.COMP_DEFLATE, wire_len=len(wire))
    assert ack[:2] == [codes.MSG_ACK, 0], ack
    assert ecu.send_data(wire, 0) == len(wire)
    r = ecu.request(messages.end(len(wire)), timeout=30)
    assert r[:4] == [codes.MSG_RESULT, codes.MSG_END, codes.OK, 0], r
    body, _, _ = ecu.status()
    other = body[R.R_SLOTS][1 - body[R.R_ACTIVE_SLOT]]
    assert other[R.S_STATE] == codes.SLOT_VERIFIED
    assert other[R.S_SHA256] == hashlib.sha256(image).digest()


def test_other_begin_after_link_loss_starts_over(
    installed_v1: Installed, micropython: str, mpy_tree: Path, tmp_path: Path
) -> None:
    shutil.copy(installed_v1.flash, tmp_path / "flash.bin")
    ecu = Ecu(
        tmp_path,
        micropython,
        mpy_tree,
        director=installed_v1.director,
        ecu_key=installed_v1.ecu_key,
        flash=tmp_path / "flash.bin",
        extra={"idle_ms": 300},
    )
    first = app_bundle("2.0.0", pad=20000)
    second = app_bundle("2.0.1", pad=10000)
    try:
        ecu.start()
        ecu.hello()
        instr1 = ecu.instruction(first)
        assert ecu.begin(first, instr=instr1)[:2] == [codes.MSG_ACK, 0]
        for off in range(0, 10000, 2000):
            r = ecu.request(messages.data(off, first[off : off + 2000]))
            assert r[:2] == [codes.MSG_ACK, off + 2000], r
        # while the first transfer is live, another BEGIN is refused
        instr2 = ecu.instruction(second, version="2.0.1", release_counter=3)
        assert ecu.begin(second, instr=instr2)[:2] == [codes.MSG_ERROR, codes.E_BUSY]
        time.sleep(0.8)  # link lost: the session falls back to IDLE
        ecu.hello()
        # another instruction with a bad signature: refused, and the interrupted transfer gave
        # up only its RAM state (parked, as a reset would): it resumes from its last durable
        # checkpoint (8192, an erase-sector boundary), not from 0 and not from 10000
        keyid = ecu.director[0].signature_entry(instr2)[0]
        r = ecu.begin(second, instr=instr2, sigs=[[keyid, bytes(64)]])
        assert r[:2] == [codes.MSG_ERROR, codes.E_SIG_INVALID], r
        assert ecu.begin(first, instr=instr1)[:2] == [codes.MSG_ACK, 8192]
        time.sleep(0.8)
        ecu.hello()
        # the host moved on to another image: it replaces the interrupted transfer, from 0
        assert ecu.begin(second, instr=instr2)[:2] == [codes.MSG_ACK, 0]
        assert ecu.send_data(second, 0) == len(second)
        r = ecu.request(messages.end(len(second)), timeout=30)
        assert r[:4] == [codes.MSG_RESULT, codes.MSG_END, codes.OK, 0], r
        body, _, _ = ecu.status()
        other = body[R.R_SLOTS][1 - body[R.R_ACTIVE_SLOT]]
        assert other[R.S_VERSION] == "2.0.1" and other[R.S_STATE] == codes.SLOT_VERIFIED
    finally:
        ecu.close()


def test_exit_statuses(micropython: str, mpy_tree: Path, tmp_path: Path) -> None:
    # run_ms elapsed: EXIT_STOP (0); an unusable config: EXIT_CONFIG (65), before any flash use
    ecu = Ecu(tmp_path, micropython, mpy_tree, extra={"run_ms": 300})
    try:
        ecu.start()
        ecu.hello()
        assert ecu.wait_exit() == 0
        cfg = ecu.cfg_path.read_text().replace('"ecu_seed"', '"ecu_seed_missing"')
        ecu.cfg_path.write_text(cfg)
        (tmp_path / "flash.bin").unlink()
        ecu.start()
        assert ecu.wait_exit() == 65, ecu.stderr
        assert b"ecu_seed" in ecu.stderr
        assert not (tmp_path / "flash.bin").exists()
    finally:
        ecu.close()


def _cpu_ticks(pid: int) -> int:
    # user + system clock ticks of the process and its children (the venv's `micropython` may be
    # a launcher with the interpreter as its child)
    pids = [pid]
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        pids += [int(x) for x in f.read().split()]
    total = 0
    for p in pids:
        with open(f"/proc/{p}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total


def test_agent_idles_when_the_host_side_of_the_line_is_gone(ecu: Ecu) -> None:
    # The pty master closed (the gateway process died): Linux reports POLLIN with POLLHUP and
    # every read fails; the agent must wait, not spin on it.
    assert ecu.proc is not None
    os.close(ecu.master)
    time.sleep(0.3)
    before = _cpu_ticks(ecu.proc.pid)
    time.sleep(2.0)
    used = _cpu_ticks(ecu.proc.pid) - before
    assert ecu.proc.poll() is None  # still alive, waiting for a host
    assert used < os.sysconf("SC_CLK_TCK") // 2, used  # < 25 % of one core over 2 s


def _text_image(n: int) -> bytes:
    # compresses ~3x: several deflate segments on the wire
    words = [b"flash", b"slot", b"ecu", b"verify", b"otalink", b"segment", b"trial", b"boot"]
    out = bytearray()
    i = 0
    while len(out) < n:
        out += words[(i * 7 + i // 5) % len(words)] + b" %d\n" % (i % 997)
        i += 1
    return bytes(out[:n])


def _segments(ecu: Ecu, image: bytes) -> bytes:
    from otalink.host.gateway.ecu import segments

    info = messages.decode_report(ecu.hello()[1])
    assert info[R.R_CAPS][R.C_FLAGS] & codes.CAP_DEFLATE_SEG
    return segments.encode(image, info[R.R_CAPS][R.C_DEFLATE_WBITS])


def _verified_is(ecu: Ecu, image: bytes) -> None:
    body, _, _ = ecu.status()
    other = body[R.R_SLOTS][1 - body[R.R_ACTIVE_SLOT]]
    assert other[R.S_STATE] == codes.SLOT_VERIFIED, other
    assert other[R.S_SHA256] == hashlib.sha256(image).digest()


def test_same_instruction_plain_then_compressed_starts_over(ecu: Ecu) -> None:
    # Defect 1: BEGIN(instr, compression 0) -> DATA to the middle -> BEGIN(same instr,
    # compression 2, its shorter wire_len) was taken as a resume: ACK offset past the new
    # stream's end, E_WIRE_LENGTH at every END until ABORT or a restart.
    image = _text_image(60000)
    wire = _segments(ecu, image)
    assert len(wire) < len(image) // 2
    instr = ecu.instruction(image)
    assert ecu.begin(image, instr=instr)[:2] == [codes.MSG_ACK, 0]
    half = len(image) // 2
    assert ecu.send_data(image[:half], 0) == half
    ack = ecu.begin(image, instr=instr, compression=codes.COMP_DEFLATE_SEG, wire_len=len(wire))
    assert ack[:2] == [codes.MSG_ACK, 0], ack  # another stream: from 0
    assert ecu.send_data(wire, 0) == len(wire)
    r = ecu.request(messages.end(len(wire)), timeout=30)
    assert r[:4] == [codes.MSG_RESULT, codes.MSG_END, codes.OK, 0], r
    _verified_is(ecu, image)


def test_same_instruction_compressed_then_plain_while_a_decoder_is_live(ecu: Ecu) -> None:
    # Defect 1 with a deflate-segment decoder live: the same BEGIN with other parameters
    # re-verified the instruction beside it and ran out of memory (E_INTERNAL) at the budget of
    # the time. Now only BEGIN's own fields are compared (no crypto, and no codec:
    # resume.parse_begin; mp_test_data_errors.py tests that in-process) and the old stream is
    # dropped first.
    image = _text_image(60000)
    wire = _segments(ecu, image)
    instr = ecu.instruction(image)
    ack = ecu.begin(image, instr=instr, compression=codes.COMP_DEFLATE_SEG, wire_len=len(wire))
    assert ack[:2] == [codes.MSG_ACK, 0], ack
    part = len(wire) // 2
    assert ecu.send_data(wire[:part], 0) == part  # a segment's decoder is live now
    # refused for BEGIN's own fields: the live stream is left as it was
    r = ecu.begin(image, instr=instr, wire_len=len(image) + 1)
    assert r[:2] == [codes.MSG_ERROR, codes.E_WIRE_LENGTH], r
    r = ecu.begin(image, instr=instr, sha256=bytes(32), compression=codes.COMP_NONE)
    assert r[:2] == [codes.MSG_ERROR, codes.E_HASH_MISMATCH], r
    assert ecu.request(messages.data(part, wire[part : part + 100]))[:2] == [
        codes.MSG_ACK,
        part + 100,
    ]
    # the same instruction, uncompressed: a new stream from 0
    ack = ecu.begin(image, instr=instr)
    assert ack[:2] == [codes.MSG_ACK, 0], ack
    assert ecu.send_data(image, 0) == len(image)
    r = ecu.request(messages.end(len(image)), timeout=30)
    assert r[:4] == [codes.MSG_RESULT, codes.MSG_END, codes.OK, 0], r
    _verified_is(ecu, image)
