"""Signed commands against the real agent (MicroPython, 64k heap, a pty): for each of ABORT,
ACTIVATE, CONFIRM, REVERT and REBOOT, in the state where it matters, every forged, misdirected,
stale or replayed form is refused with its own code and changes nothing the ECU reports (slot
states, transfer, boot state, command nonce), and the properly signed command does its work once.
"""

from __future__ import annotations

import json
import os
from typing import Any

import cbor2
from otalink.host.keys import KeyPair
from otalink.protocol import codes, messages

from tests.device_session._agent import ECU_ID, Ecu, app_bundle

R = messages
OTHER = {  # the command a type-mismatch case puts inside the signature
    codes.MSG_ACTIVATE: codes.MSG_CONFIRM,
    codes.MSG_CONFIRM: codes.MSG_REVERT,
    codes.MSG_REVERT: codes.MSG_ACTIVATE,
    codes.MSG_ABORT: codes.MSG_REVERT,
    codes.MSG_REBOOT: codes.MSG_ABORT,
}


def snapshot(ecu: Ecu) -> list[Any]:
    """Everything the ECU reports, but the echo of our own STATUS nonce."""
    body, _raw, _sig = ecu.status()
    body[R.R_NONCE] = None
    return body


def refusals(ecu: Ecu, t: int, stale: bytes) -> None:
    """Every refused form of command ``t``; each answered with its code, none changes a thing."""
    before = snapshot(ecu)
    good = ecu.command(t)  # (not sent: the forms below derive from it)
    bad_sig = bytearray(good)
    bad_sig[-1] ^= 0x01
    cases = [
        ("unsigned (version 1)", cbor2.dumps([t]), codes.E_CMD_AUTH, 0),
        ("unknown key", ecu.command(t, key=KeyPair.generate()), codes.E_CMD_AUTH, 1),
        ("bad signature", bytes(bad_sig), codes.E_CMD_AUTH, 2),
        ("another ECU", ecu.command(t, ecu_id="bms-2"), codes.E_CMD_TARGET, 2),
        ("type mismatch", ecu.command(t, inner=OTHER[t]), codes.E_CMD_TARGET, 1),
        ("stale nonce", ecu.command(t, nonce=stale), codes.E_CMD_REPLAY, 0),
    ]
    for name, payload, code, detail in cases:
        r = ecu.request(payload)
        assert r == [codes.MSG_ERROR, code, detail, t], (name, r)
        assert snapshot(ecu) == before, name
    assert ecu.proc is not None and ecu.proc.poll() is None  # (REBOOT refused: no reset)


def accept(ecu: Ecu, t: int) -> bytes:
    """Send the properly signed ``t``; RESULT OK with the new nonce; returns the bytes sent."""
    n0 = ecu.cmd_nonce
    payload = ecu.command(t)
    r = ecu.request(payload)
    assert r[:4] == [codes.MSG_RESULT, t, codes.OK, 0], r
    assert r[4] != n0
    return payload


def replayed(ecu: Ecu, payload: bytes, t: int) -> None:
    """The accepted command's exact bytes again: E_CMD_REPLAY, nothing changes."""
    before = snapshot(ecu)
    r = ecu.request(payload)
    assert r[:2] == [codes.MSG_ERROR, codes.E_CMD_REPLAY] and r[3] == t, r
    assert snapshot(ecu) == before


def spend_nonce(ecu: Ecu) -> bytes:
    """The current nonce, made stale by an accepted command that changes nothing else (CONFIRM
    of the confirmed v1 install is idempotent; while receiving it is E_BAD_STATE)."""
    old = ecu.status()[0][R.R_CMD_NONCE]
    r = ecu.cmd(codes.MSG_CONFIRM)
    assert r[:2] == [codes.MSG_RESULT, codes.MSG_CONFIRM], r
    assert r[2] in (codes.OK, codes.E_BAD_STATE), r
    assert ecu.status()[0][R.R_CMD_NONCE] != old
    return bytes(old)


def _other(body: list[Any]) -> list[Any]:
    return body[R.R_SLOTS][1 - body[R.R_ACTIVE_SLOT]]  # type: ignore[no-any-return]


def _verified(ecu: Ecu, version: str = "2.0.0", rc: int = 2) -> bytes:
    image = app_bundle(version, pad=6000)
    r = ecu.transfer(image, version=version, release_counter=rc)
    assert r[:4] == [codes.MSG_RESULT, codes.MSG_END, codes.OK, 0], r
    return image


def test_activate(ecu: Ecu) -> None:
    _verified(ecu)
    stale = spend_nonce(ecu)
    refusals(ecu, codes.MSG_ACTIVATE, stale)
    assert _other(snapshot(ecu))[R.S_STATE] == codes.SLOT_VERIFIED
    sent = accept(ecu, codes.MSG_ACTIVATE)
    assert _other(snapshot(ecu))[R.S_STATE] == codes.SLOT_PENDING
    replayed(ecu, sent, codes.MSG_ACTIVATE)


def test_revert(ecu: Ecu) -> None:
    _verified(ecu)
    assert ecu.cmd(codes.MSG_ACTIVATE)[2] == codes.OK
    stale = spend_nonce(ecu)
    refusals(ecu, codes.MSG_REVERT, stale)
    assert _other(snapshot(ecu))[R.S_STATE] == codes.SLOT_PENDING
    sent = accept(ecu, codes.MSG_REVERT)
    assert _other(snapshot(ecu))[R.S_STATE] == codes.SLOT_REJECTED
    replayed(ecu, sent, codes.MSG_REVERT)


def test_confirm(ecu: Ecu) -> None:
    _verified(ecu)
    assert ecu.cmd(codes.MSG_ACTIVATE)[2] == codes.OK
    before_reboot = ecu.cmd_nonce
    assert before_reboot is not None
    info = R.decode_report(ecu.reboot()[1])
    assert info[R.R_BOOT_STATE] == codes.BOOT_TRIAL
    # the nonce of the previous boot is stale: a new process made a new one
    assert info[R.R_CMD_NONCE] != before_reboot
    refusals(ecu, codes.MSG_CONFIRM, before_reboot)
    body = snapshot(ecu)
    assert body[R.R_SLOTS][body[R.R_ACTIVE_SLOT]][R.S_STATE] == codes.SLOT_TRIAL
    assert body[R.R_RELEASE_FLOOR] == 1
    sent = accept(ecu, codes.MSG_CONFIRM)
    body = snapshot(ecu)
    assert body[R.R_SLOTS][body[R.R_ACTIVE_SLOT]][R.S_STATE] == codes.SLOT_CONFIRMED
    assert body[R.R_RELEASE_FLOOR] == 2
    replayed(ecu, sent, codes.MSG_CONFIRM)


def test_abort_mid_transfer(ecu: Ecu) -> None:
    image = app_bundle("2.0.0", pad=30000)
    assert ecu.begin(image)[:2] == [codes.MSG_ACK, 0]
    for off in range(0, 8000, 2000):
        assert ecu.request(R.data(off, image[off : off + 2000]))[:2] == [codes.MSG_ACK, off + 2000]
    stale = spend_nonce(ecu)  # (CONFIRM while receiving: authentic, fails E_BAD_STATE)
    refusals(ecu, codes.MSG_ABORT, stale)
    # the transfer went on untouched: next DATA is taken at exactly the offset it had
    assert ecu.request(R.data(8000, image[8000:10000]))[:2] == [codes.MSG_ACK, 10000]
    sent = accept(ecu, codes.MSG_ABORT)
    body = snapshot(ecu)
    assert body[R.R_TRANSFER][R.T_PHASE] == codes.PH_IDLE
    assert _other(body)[R.S_STATE] == codes.SLOT_EMPTY
    r = ecu.request(R.data(10000, image[10000:12000]))
    assert r[:2] == [codes.MSG_ERROR, codes.E_BAD_STATE], r
    replayed(ecu, sent, codes.MSG_ABORT)


def test_reboot(ecu: Ecu) -> None:
    stale = spend_nonce(ecu)
    refusals(ecu, codes.MSG_REBOOT, stale)
    sent = ecu.command(codes.MSG_REBOOT)
    r = ecu.request(sent)
    assert r[:4] == [codes.MSG_RESULT, codes.MSG_REBOOT, codes.OK, 0], r
    assert ecu.wait_exit() == 64
    ecu.start()
    ecu.hello()
    # after the reset, the recorded REBOOT is a replay (the new boot has a new nonce)
    before = snapshot(ecu)
    r = ecu.request(sent)
    assert r[:2] == [codes.MSG_ERROR, codes.E_CMD_REPLAY], r
    assert snapshot(ecu) == before
    assert ecu.proc is not None and ecu.proc.poll() is None


def test_nonce_is_fresh_per_boot_and_reported_under_the_signature(ecu: Ecu) -> None:
    a = ecu.status()[0][R.R_CMD_NONCE]
    assert ecu.status()[0][R.R_CMD_NONCE] == a  # STATUS does not spend it
    assert ecu.request(ecu.command(codes.MSG_REBOOT))[2] == codes.OK
    assert ecu.wait_exit() == 64
    ecu.start()
    b = R.decode_report(ecu.hello()[1])[R.R_CMD_NONCE]
    assert len(b) == 16 and b != a


def test_an_ecu_without_command_keys_refuses_every_command(
    micropython: str, mpy_tree: Any, tmp_path: Any
) -> None:
    ecu = Ecu(tmp_path, micropython, mpy_tree, extra={"command_keys": []})
    try:
        ecu.start()
        ecu.hello()
        for t in messages.COMMANDS:
            r = ecu.request(ecu.command(t))
            assert r == [codes.MSG_ERROR, codes.E_CMD_AUTH, 1, t], r
        assert ecu.proc is not None and ecu.proc.poll() is None
    finally:
        ecu.close()


def test_commands_for_this_ecu_only(ecu: Ecu) -> None:
    # a command recorded on another ECU's line, for that ECU and its nonce, is no good here
    other_nonce = os.urandom(16)
    r = ecu.request(ecu.command(codes.MSG_REBOOT, ecu_id=ECU_ID + "x", nonce=other_nonce))
    assert r[:2] == [codes.MSG_ERROR, codes.E_CMD_TARGET], r


def test_bad_command_keys_are_a_config_error(
    micropython: str, mpy_tree: Any, tmp_path: Any
) -> None:
    for bad in (["zz" * 32], ["00" * 31], "00" * 32, ["00" * 32] * 9):
        ecu = Ecu(tmp_path, micropython, mpy_tree)
        cfg = json.loads(ecu.cfg_path.read_text())
        cfg["command_keys"] = bad  # (the host's make_ecu_config would refuse to write these)
        ecu.cfg_path.write_text(json.dumps(cfg))
        try:
            ecu.start()
            assert ecu.wait_exit() == 65, (bad, ecu.stderr)  # EXIT_CONFIG, before any flash use
            assert b"command_keys" in ecu.stderr
        finally:
            ecu.close()
