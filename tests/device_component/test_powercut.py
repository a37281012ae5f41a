"""Power cuts of the whole ECU (loader, agent, application) during an update (issue 11: the
power-cut sweep with an application present and through the loader). The ECU runner arms the
flash emulator (cut_mode "kill": the process dies at the chosen flash operation, torn or not)
and restarts the ECU like a power cycle; after each cut the loader must boot a slot whose flash
content matches its recorded hash, the application must run again, and the update, retried by
the host, must complete. A sample of cut points in `make test` (the transfer, the trial boot's
own records), every operation of both processes under `make soak` (-m slow)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import pytest
from otalink.host.sim.ecusim import FlashFile
from otalink.protocol import codes as C
from otalink.protocol import messages as M

from tests.device_component._ecu import BMS, Component, image
from tests.device_component.conftest import Base, make

V2 = image(BMS + b"#" + bytes(30000).hex().encode() + b"\n", agent_version="1.0.0")
SHA2 = hashlib.sha256(V2).digest()


class Cut(Exception):
    """The ECU lost power (the runner started it again) while the host talked to it."""


def _talk(e: Component, payload: bytes, timeout: float = 15.0) -> list[Any]:
    # a request; Cut as soon as the run it was sent to is gone (not after the whole timeout)
    boots = e.runner.boots
    proc = e.runner._proc
    e.send(payload)
    end = time.monotonic() + timeout
    while True:
        try:
            return e.recv(0.3)
        except AssertionError:
            if e.runner.boots > boots or (proc is not None and proc.poll() is not None):
                raise Cut() from None
            if time.monotonic() > end:
                raise


def _check_boot(e: Component) -> list[Any]:
    """After a (re)start: the running slot's flash content is what its record says, the
    application runs, the agent answers."""
    info = e.info()
    st = e.state()
    slot = st.slots[st.active]
    content = FlashFile(e.tmp / "flash.bin", e.geom).slot_sha256(st.active, slot.image_len)
    assert content == slot.sha256, (st, e.output()[-2000:])
    assert info[M.R_APP][M.A_STATE] in (C.APP_STARTED, C.APP_HEALTHY), info
    return info


def update(e: Component, boot_cut: tuple[int, bool] | None) -> None:
    """Bring the ECU to 2.0.0 confirmed from whatever state a cut left it in."""
    info = _check_boot(e)
    act = info[M.R_SLOTS][info[M.R_ACTIVE_SLOT]]
    if act[M.S_SHA256] == SHA2 and act[M.S_STATE] == C.SLOT_CONFIRMED:
        return
    if not (act[M.S_SHA256] == SHA2 and act[M.S_STATE] == C.SLOT_TRIAL):
        other = info[M.R_SLOTS][1 - info[M.R_ACTIVE_SLOT]]
        if other[M.S_STATE] != C.SLOT_PENDING:
            instr = e.instruction(V2, version="2.0.0", release_counter=2)
            sigs = [k.signature_entry(instr) for k in e.director]
            ack = _talk(e, M.begin(instr, sigs, len(V2), SHA2, C.COMP_NONE, len(V2)), 30)
            assert ack[0] == C.MSG_ACK, ack
            off = ack[1]
            while off < len(V2):
                r = _talk(e, M.data(off, V2[off : off + 2000]))
                assert r[0] == C.MSG_ACK, r
                off = r[1]
            r = _talk(e, M.end(len(V2)), 30)
            assert r[:3] == [C.MSG_RESULT, C.MSG_END, C.OK], r
            r = _talk(e, e.command(C.MSG_ACTIVATE))
            assert r[:3] == [C.MSG_RESULT, C.MSG_ACTIVATE, C.OK], r
        if boot_cut is not None:
            e.runner.arm_cut(*boot_cut)  # the trial boot loses power at its k-th flash op
        boots = e.runner.boots
        r = _talk(e, e.command(C.MSG_REBOOT))
        assert r[:3] == [C.MSG_RESULT, C.MSG_REBOOT, C.OK], r
        e.cmd_nonce = None
        e.wait_boots(boots + 1)
        raise Cut()  # (booted again: start over with what it says)
    r = _talk(e, e.command(C.MSG_CONFIRM))
    assert r[:3] == [C.MSG_RESULT, C.MSG_CONFIRM, C.OK], r


def run_case(base: Base, tmp: Path, cut: int | None, boot_cut: int | None, tear: bool) -> None:
    e = make(base, tmp)
    try:
        if cut is not None:
            e.runner.arm_cut(cut, tear)
        e.start()
        armed = boot_cut
        for _ in range(8):
            try:
                update(e, (armed, tear) if armed is not None else None)
                break
            except Cut:
                armed = None  # one cut per case
                time.sleep(0.2)
        else:
            raise AssertionError("the update never completed: " + e.output()[-2000:])
        info = _check_boot(e)
        act = info[M.R_SLOTS][info[M.R_ACTIVE_SLOT]]
        assert (act[M.S_VERSION], act[M.S_STATE]) == ("2.0.0", C.SLOT_CONFIRMED), info
        assert info[M.R_RELEASE_FLOOR] == 2
        if cut is not None or boot_cut is not None:
            assert e.runner.causes.count("power") >= 2, e.runner.causes  # a cut happened
    finally:
        e.close()


SAMPLE = [
    pytest.param(1, None, True, id="begin-record-torn"),
    pytest.param(4, None, False, id="erase"),
    pytest.param(25, None, True, id="data-torn"),
    pytest.param(60, None, False, id="late-data"),
    pytest.param(None, 0, True, id="trial-start-record-torn"),
    pytest.param(None, 1, False, id="trial-healthy-record"),
]


@pytest.mark.parametrize(("cut", "boot_cut", "tear"), SAMPLE)
def test_power_cut_with_an_application_then_the_update_completes(
    base: Base, tmp_path: Path, cut: int | None, boot_cut: int | None, tear: bool
) -> None:
    run_case(base, tmp_path, cut, boot_cut, tear)


@pytest.mark.slow
@pytest.mark.parametrize("tear", [False, True], ids=["clean", "torn"])
@pytest.mark.parametrize("k", range(0, 80))
def test_power_cut_sweep_of_the_transfer(base: Base, tmp_path: Path, k: int, tear: bool) -> None:
    run_case(base, tmp_path, k, None, tear)


# Every flash operation of a trial boot up to its CONFIRM: the boot record, the healthy record,
# CONFIRM's record (a cut armed past the last one never lands: the sweep asserts that it did)
TRIAL_BOOT_OPS = 3


@pytest.mark.slow
@pytest.mark.parametrize("tear", [False, True], ids=["clean", "torn"])
@pytest.mark.parametrize("k", range(0, TRIAL_BOOT_OPS))
def test_power_cut_sweep_of_the_trial_boot(base: Base, tmp_path: Path, k: int, tear: bool) -> None:
    run_case(base, tmp_path, None, k, tear)
