"""Bad input against the real agent: each is refused with its own error code, nothing is
activated and the active slot (the confirmed v1 install) is untouched."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
from otalink.host.keys import KeyPair
from otalink.protocol import cbor, codes, messages
from otalink.protocol.frame import frame

from tests.device_session._agent import NOW, Ecu, app_bundle
from tests.device_session.conftest import Installed

R = messages


def assert_v1_untouched(ecu: Ecu, installed: Installed) -> None:
    """Active slot still the confirmed v1 (state, version, hash); nothing pending/verified."""
    body, _raw, _sig = ecu.status()
    before = installed.status
    assert body[R.R_ACTIVE_SLOT] == before[R.R_ACTIVE_SLOT]
    act = body[R.R_SLOTS][body[R.R_ACTIVE_SLOT]]
    assert act == before[R.R_SLOTS][before[R.R_ACTIVE_SLOT]]  # type: ignore[index]
    assert act[R.S_STATE] == codes.SLOT_CONFIRMED and act[R.S_VERSION] == "1.0.0"
    assert act[R.S_SHA256] == hashlib.sha256(installed.image).digest()
    other = body[R.R_SLOTS][1 - body[R.R_ACTIVE_SLOT]]
    assert other[R.S_STATE] not in (codes.SLOT_VERIFIED, codes.SLOT_PENDING), other
    assert body[R.R_RELEASE_FLOOR] == 1
    # and ACTIVATE has nothing to activate
    r = ecu.cmd(codes.MSG_ACTIVATE)
    assert r[:4] == [codes.MSG_RESULT, codes.MSG_ACTIVATE, codes.E_NO_IMAGE, 0], r


IMAGE = app_bundle("2.0.0", pad=3000)
SLOT_SIZE = 524288  # boards/unix/board.json "slots.size"


def _resign(ecu: Ecu, instr: bytes) -> list[list[bytes]]:
    return [ecu.director[0].signature_entry(instr)]


def _case_bad_signature(ecu: Ecu) -> dict[str, Any]:
    instr = ecu.instruction(IMAGE)
    kid, sig = ecu.director[0].signature_entry(instr)
    bad = bytearray(sig)
    bad[10] ^= 0x40
    return {"instr": instr, "sigs": [[kid, bytes(bad)]]}


def _case_sig_over_other_bytes(ecu: Ecu) -> dict[str, Any]:
    instr = ecu.instruction(IMAGE)
    other = ecu.instruction(IMAGE, version="2.0.1")
    return {"instr": instr, "sigs": _resign(ecu, other)}


def _case_unknown_key(ecu: Ecu) -> dict[str, Any]:
    instr = ecu.instruction(IMAGE)
    return {"instr": instr, "sigs": [KeyPair.generate().signature_entry(instr)]}


def _case_no_signature(ecu: Ecu) -> dict[str, Any]:
    return {"instr": ecu.instruction(IMAGE), "sigs": []}


def _signed(ecu: Ecu, instr: bytes) -> dict[str, Any]:
    return {"instr": instr, "sigs": _resign(ecu, instr)}


CASES = {
    "bad_signature": (_case_bad_signature, codes.E_SIG_INVALID),
    "signature_over_different_bytes": (_case_sig_over_other_bytes, codes.E_SIG_INVALID),
    "unknown_key": (_case_unknown_key, codes.E_KEY_UNKNOWN),
    "no_signature": (_case_no_signature, codes.E_KEY_UNKNOWN),
    "wrong_ecu_id": (
        lambda e: _signed(e, e.instruction(IMAGE, ecu_id="bms-2")),
        codes.E_ECU_MISMATCH,
    ),
    "wrong_hw_id": (
        lambda e: _signed(e, e.instruction(IMAGE, hw_id="stm32-r9")),
        codes.E_HW_MISMATCH,
    ),
    "equal_release_counter": (
        lambda e: _signed(e, e.instruction(IMAGE, release_counter=1)),
        codes.E_ROLLBACK,
    ),
    "lower_release_counter": (
        lambda e: _signed(e, e.instruction(IMAGE, release_counter=0)),
        codes.E_ROLLBACK,
    ),
    # v1's instruction was issued at NOW: the device's trusted time is at least NOW
    "expired": (
        lambda e: _signed(e, e.instruction(IMAGE, issued=NOW - 7200, expires=NOW - 3600)),
        codes.E_EXPIRED,
    ),
    "image_larger_than_slot": (
        lambda e: {
            **_signed(e, e.instruction(IMAGE, image_len=524288 + 1)),
            "image_len": 524288 + 1,
        },
        codes.E_IMAGE_TOO_LARGE,
    ),
    "wrong_hash": (
        lambda e: {**_signed(e, e.instruction(IMAGE)), "sha256": hashlib.sha256(b"x").digest()},
        codes.E_HASH_MISMATCH,
    ),
    "wrong_length": (
        lambda e: {
            **_signed(e, e.instruction(IMAGE)),
            "image_len": len(IMAGE) - 1,
            "wire_len": len(IMAGE) - 1,
        },
        codes.E_LENGTH_MISMATCH,
    ),
    "malformed_instruction": (
        lambda e: _signed(e, cbor.dumps([1, "bms-1", "unix-x64-r1", "2.0.0"])),
        codes.E_BAD_INSTRUCTION,
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_begin_refused(name: str, ecu: Ecu, installed_v1: Installed) -> None:
    make, code = CASES[name]
    assert installed_v1.status[R.R_CAPS][R.C_SLOT_SIZE] == SLOT_SIZE  # type: ignore[index]
    reply = ecu.begin(IMAGE, **make(ecu))
    assert reply[0] == codes.MSG_ERROR and reply[1] == code, reply
    # DATA after a refused BEGIN is not accepted either
    r = ecu.request(messages.data(0, IMAGE[:100]))
    assert r[:2] == [codes.MSG_ERROR, codes.E_BAD_STATE], r
    assert_v1_untouched(ecu, installed_v1)


def test_threshold_counts_distinct_trusted_keys(
    micropython: str, mpy_tree: Any, tmp_path: Any
) -> None:
    keys = [KeyPair.generate(), KeyPair.generate()]
    ecu = Ecu(tmp_path, micropython, mpy_tree, director=keys, threshold=2)
    try:
        ecu.start()
        ecu.hello()
        instr = ecu.instruction(IMAGE, release_counter=5)
        one = keys[0].signature_entry(instr)
        # the same key twice does not make two signatures
        r = ecu.begin(IMAGE, instr=instr, sigs=[one, one])
        assert r[:2] == [codes.MSG_ERROR, codes.E_SIG_INVALID], r
        r = ecu.begin(IMAGE, instr=instr, sigs=[one, keys[1].signature_entry(instr)])
        assert r[0] == codes.MSG_ACK and r[1] == 0, r
    finally:
        ecu.close()


def test_flipped_image_byte(ecu: Ecu, installed_v1: Installed) -> None:
    ack = ecu.begin(IMAGE)
    assert ack[0] == codes.MSG_ACK and ack[1] == 0
    bad = bytearray(IMAGE)
    bad[len(bad) // 2] ^= 0x01
    assert ecu.send_data(bytes(bad), 0) == len(IMAGE)
    r = ecu.request(messages.end(len(IMAGE)), timeout=30)
    assert r[:4] == [codes.MSG_RESULT, codes.MSG_END, codes.E_HASH_MISMATCH, 0], r
    assert_v1_untouched(ecu, installed_v1)


def test_data_outside_window(ecu: Ecu, installed_v1: Installed) -> None:
    ack = ecu.begin(IMAGE)
    assert ack[0] == codes.MSG_ACK
    window = ack[2]
    r = ecu.request(messages.data(window, bytes(100)))
    assert r == [codes.MSG_ERROR, codes.E_OUT_OF_WINDOW, 0, codes.MSG_DATA], r
    # a frame starting inside the window but ending past it is refused too
    r = ecu.request(messages.data(window - 100, bytes(200)))
    assert r[:2] == [codes.MSG_ERROR, codes.E_OUT_OF_WINDOW], r
    # nothing was taken: the transfer is still at offset 0
    body, _, _ = ecu.status()
    assert body[R.R_TRANSFER][R.T_WIRE_OFFSET] == 0
    assert ecu.cmd(codes.MSG_ABORT)[2] == codes.OK
    assert_v1_untouched(ecu, installed_v1)


def test_duplicate_and_reordered_frames(ecu: Ecu) -> None:
    ack = ecu.begin(IMAGE)
    assert ack[:2] == [codes.MSG_ACK, 0]
    c = 1024
    chunks = [(o, IMAGE[o : o + c]) for o in range(0, len(IMAGE), c)]
    # frame 1 before frame 0: a gap, dropped, ACK says "0"
    r = ecu.request(messages.data(*chunks[1]))
    assert r[:2] == [codes.MSG_ACK, 0], r
    assert ecu.request(messages.data(*chunks[0]))[:2] == [codes.MSG_ACK, c]
    # frame 0 again: a duplicate, dropped, ACK still at c
    assert ecu.request(messages.data(*chunks[0]))[:2] == [codes.MSG_ACK, c]
    for off, data in chunks[1:]:
        assert ecu.request(messages.data(off, data))[:2] == [codes.MSG_ACK, off + len(data)]
    # a late duplicate of the middle changes nothing
    assert ecu.request(messages.data(*chunks[1]))[:2] == [codes.MSG_ACK, len(IMAGE)]
    r = ecu.request(messages.end(len(IMAGE)), timeout=30)
    assert r[:4] == [codes.MSG_RESULT, codes.MSG_END, codes.OK, 0], r


def test_garbage_on_the_line(ecu: Ecu) -> None:
    junk = os.urandom(3000) + b"\xa5\x5a\xff\xff" + b"\xa5" * 50
    ecu.write(junk)
    ack = ecu.begin(IMAGE)
    assert ack[:2] == [codes.MSG_ACK, 0], ack
    c = 2000
    for off in range(0, len(IMAGE), c):
        f = bytearray(frame(messages.data(off, IMAGE[off : off + c])))
        if off == c:
            # a corrupted copy first (CRC fails, frame dropped), then noise, then the real one
            bad = bytearray(f)
            bad[20] ^= 0xFF
            ecu.write(bytes(bad) + os.urandom(100))
        ecu.write(bytes(f))
        r = ecu.recv()
        assert r[:2] == [codes.MSG_ACK, min(off + c, len(IMAGE))], r
    # a frame in the profile's framing but with a non-CBOR payload: ERROR, session goes on
    ecu.write(frame(b"\xff\xfe"))
    r = ecu.recv()
    assert r[0] == codes.MSG_ERROR and r[1] == codes.E_BAD_MESSAGE, r
    r = ecu.request(messages.end(len(IMAGE)), timeout=30)
    assert r[:4] == [codes.MSG_RESULT, codes.MSG_END, codes.OK, 0], r


def test_begin_while_transfer_active(ecu: Ecu, installed_v1: Installed) -> None:
    ack = ecu.begin(IMAGE)
    assert ack[:2] == [codes.MSG_ACK, 0]
    assert ecu.request(messages.data(0, IMAGE[:1000]))[:2] == [codes.MSG_ACK, 1000]
    other = app_bundle("3.0.0")
    r = ecu.begin(other, instr=ecu.instruction(other, version="3.0.0", release_counter=3))
    assert r[:2] == [codes.MSG_ERROR, codes.E_BUSY], r
    # the running transfer is unaffected
    assert ecu.send_data(IMAGE, 1000) == len(IMAGE)
    r = ecu.request(messages.end(len(IMAGE)), timeout=30)
    assert r[:4] == [codes.MSG_RESULT, codes.MSG_END, codes.OK, 0], r


def test_wrong_state_messages(ecu: Ecu) -> None:
    for payload, t in (
        (messages.data(0, b"x"), codes.MSG_DATA),
        (messages.end(10), codes.MSG_END),
        (messages.ack(0, 0, 0), codes.MSG_ACK),
    ):
        r = ecu.request(payload)
        assert r == [codes.MSG_ERROR, codes.E_BAD_STATE, t, t], r
    ecu.begin(IMAGE)
    # an authentic ACTIVATE while receiving: its nonce is spent, it runs and fails
    r = ecu.cmd(codes.MSG_ACTIVATE)
    assert r[:4] == [codes.MSG_RESULT, codes.MSG_ACTIVATE, codes.E_BAD_STATE, codes.MSG_ACTIVATE]
    # HELLO offering a max_payload below the protocol minimum: not in the profile
    r = ecu.request(cbor.dumps([codes.MSG_HELLO, 2, os.urandom(16), 10]))
    assert r == [codes.MSG_ERROR, codes.E_BAD_MESSAGE, 3, codes.MSG_HELLO], r
    # HELLO of protocol version 1: the device's version
    r = ecu.request(messages.hello(os.urandom(16), 4096, proto_ver=1))
    assert r == [codes.MSG_ERROR, codes.E_VERSION, 2, codes.MSG_HELLO], r
    # a payload whose type cannot be read: ERROR answering type 0
    ecu.write(frame(b"\xff\xfe"))
    assert ecu.recv() == [codes.MSG_ERROR, codes.E_BAD_MESSAGE, 0, 0]
