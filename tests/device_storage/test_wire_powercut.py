"""Power cuts of the real agent in the middle of a wire update (end to end).

The agent (device/main.py under MicroPython, on a pty) is started with the flash emulator armed
(OTALINK_FLASH_CUT / OTALINK_FLASH_TEAR, cut_mode "kill"): at the chosen flash operation it
SIGKILLs itself. Driven over the wire with the device-session engineer's protocol harness: after
the cut the agent is started again on the same flash file and line; it must boot a known image
whose flash content matches its recorded hash, and the update, retried, must complete (resuming
from the durable offset when the cut fell in the data). The exhaustive cut sweep is
test_powercut.py (Slots API, hundreds of points); this covers the same guarantee through the
whole stack at a few points of each phase.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from otalink.host.sim.ecusim import FlashFile, board_geometry, micropython_exe, mpy_path
from otalink.protocol import codes as C
from otalink.protocol import messages as M

from tests.device_session._agent import Ecu, app_bundle

V2 = app_bundle("2.0.0", pad=40000)
SHA2 = hashlib.sha256(V2).digest()


class Died(Exception):
    """The agent process ended (power cut or reset) while we waited for it."""


def _recv(ecu: Ecu, timeout: float = 15.0) -> list[Any]:
    end = time.monotonic() + timeout
    while True:
        try:
            return ecu.recv(0.1)
        except AssertionError:
            assert ecu.proc is not None
            if ecu.proc.poll() is not None:
                raise Died(ecu.proc.returncode) from None
            if time.monotonic() > end:
                raise


def _request(ecu: Ecu, payload: bytes, timeout: float = 15.0) -> list[Any]:
    ecu.send(payload)
    return _recv(ecu, timeout)


def _ok(ecu: Ecu, payload: bytes, mtype: int) -> None:
    r = _request(ecu, payload)
    assert r[:4] == [C.MSG_RESULT, mtype, C.OK, 0], r


def _report(ecu: Ecu) -> list[Any]:
    try:
        return M.decode_report(ecu.hello()[1])
    except AssertionError:
        assert ecu.proc is not None
        if ecu.proc.poll() is not None:  # died while booting
            raise Died(ecu.proc.returncode) from None
        raise


def _start(ecu: Ecu, cut: int | None, tear: bool) -> None:
    env = {"OTALINK_FLASH_CUT": str(cut), "OTALINK_FLASH_TEAR": "1" if tear else "0"}
    ecu.start(env if cut is not None else None)


def update(ecu: Ecu, after_reboot_cut: int | None = None, tear: bool = False) -> int:
    """Bring the running agent to 2.0.0 confirmed from whatever state it is in; returns the
    wire offset the transfer resumed from (-1 when no transfer was needed)."""
    info = _report(ecu)
    slots = info[M.R_SLOTS]
    act = info[M.R_ACTIVE_SLOT]
    resumed = -1
    if slots[act][4] == SHA2 and slots[act][0] == C.SLOT_CONFIRMED:
        return resumed
    if not (slots[act][4] == SHA2 and slots[act][0] == C.SLOT_TRIAL):
        if slots[1 - act][0] != C.SLOT_PENDING:
            instr = ecu.instruction(V2, version="2.0.0", release_counter=2)
            sigs = [k.signature_entry(instr) for k in ecu.director]
            begin = M.begin(instr, sigs, len(V2), SHA2, C.COMP_NONE, len(V2))
            ack = _request(ecu, begin, 30)
            assert ack[0] == C.MSG_ACK, ack
            off = resumed = ack[1]
            while off < len(V2):
                r = _request(ecu, M.data(off, V2[off : off + 2000]))
                assert r[0] == C.MSG_ACK, r
                off = r[1]
            _ok(ecu, M.end(len(V2)), C.MSG_END)
            _ok(ecu, ecu.command(C.MSG_ACTIVATE), C.MSG_ACTIVATE)
        _ok(ecu, ecu.command(C.MSG_REBOOT), C.MSG_REBOOT)
        assert ecu.wait_exit() == 64
        _start(ecu, after_reboot_cut, tear)
        info = _report(ecu)
        assert info[M.R_BOOT_STATE] == C.BOOT_TRIAL, info
    _ok(ecu, ecu.command(C.MSG_CONFIRM), C.MSG_CONFIRM)
    return resumed


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Ecu]:
    """Flash with 1.0.0 installed and confirmed through the wire (once per worker)."""
    d = tmp_path_factory.mktemp("wirecut")
    ecu = Ecu(d, micropython_exe(), mpy_path())
    try:
        ecu.start()
        ecu.hello()
        ecu.install(app_bundle("1.0.0", pad=20000), "1.0.0", 1)
        ecu.kill()
    finally:
        ecu.close()
    return d / "flash.bin", ecu


# (flash op to cut after in the transfer process, or in the process after REBOOT; tear)
CASES = [
    pytest.param(1, None, True, id="begin-record-torn"),
    pytest.param(6, None, False, id="during-erase"),
    pytest.param(40, None, True, id="data-after-checkpoints-torn"),
    pytest.param(None, 0, True, id="trial-start-torn"),
    pytest.param(None, 2, False, id="confirm-record"),
]


@pytest.mark.parametrize(("cut", "after_reboot", "tear"), CASES)
def test_cut_then_retry_completes(base: tuple[Path, Ecu], tmp_path: Path, cut: int | None,
                                  after_reboot: int | None, tear: bool) -> None:  # fmt: skip
    flash, proto = base
    shutil.copy(flash, tmp_path / "flash.bin")
    ecu = Ecu(tmp_path, micropython_exe(), mpy_path(), director=proto.director,
              ecu_key=proto.ecu_key, flash=tmp_path / "flash.bin")  # fmt: skip
    geom = board_geometry("unix")
    try:
        _start(ecu, cut, tear)
        with pytest.raises(Died) as died:
            update(ecu, after_reboot, tear)
        assert died.value.args[0] == -9  # SIGKILL from the emulator, nothing ran after it
        ecu.kill()
        ecu.start()  # power back
        info = _report(ecu)
        act = info[M.R_ACTIVE_SLOT]
        s = info[M.R_SLOTS][act]
        assert s[0] in (C.SLOT_CONFIRMED, C.SLOT_TRIAL) and s[1] in ("1.0.0", "2.0.0")
        content = FlashFile(tmp_path / "flash.bin", geom).slot_sha256(act, s[3])
        assert content == s[4]  # the running slot holds exactly its recorded image
        resumed = update(ecu)
        if cut == 40:
            assert resumed > 0  # acknowledged data before the durable offset was not resent
        final = _report(ecu)
        fs = final[M.R_SLOTS][final[M.R_ACTIVE_SLOT]]
        assert (fs[0], fs[1], fs[4]) == (C.SLOT_CONFIRMED, "2.0.0", SHA2)
        assert final[M.R_RELEASE_FLOOR] == 2
    finally:
        ecu.close()
