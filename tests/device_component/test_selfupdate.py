"""The agent updates itself (issue 11, part 4): it travels in the slot with the application, so
an update replaces it with the same A/B, trial and rollback. Agent N -> N+1 (its trial INFO shows
N+1; the host's receive probe passes; CONFIRM), then three broken N+2 variants, each rolled back
to N+1 with its reason: one that fails at import (E_AGENT_FAILED), one that imports but never
answers (the trial deadline: E_NOT_CONFIRMED), one that answers but cannot receive an update
(the receive probe fails: the host's REVERT records E_PROBE_FAILED)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest
from otalink.host.sim.ecusim import agent_tree
from otalink.protocol import codes as C
from otalink.protocol import messages as M

from tests.device_component._ecu import BMS, Component, compile_mpy, image
from tests.device_component.conftest import Base, make

ROOT = Path(__file__).resolve().parent.parent.parent
N = 2  # trial boots


def probe(e: Component, data: bytes) -> list[Any]:
    """The host's receive probe (docs/protocol.md 7.1): PROBE, DATA, END -> the PROBE echo."""
    ack = e.request(M.probe(len(data), hashlib.sha256(data).digest(), C.COMP_NONE, len(data)))
    assert ack[:2] == [C.MSG_ACK, 0], ack
    assert e.send_data(data, 0) == len(data)
    return e.request(M.end(len(data)), 30)


def probe_passes(e: Component, data: bytes) -> bool:
    r = probe(e, data)
    return r == [C.MSG_PROBE, len(data), hashlib.sha256(data).digest(), C.COMP_NONE, len(data)]


@pytest.fixture(scope="session")
def base_n1(base: Base, tmp_path_factory: pytest.TempPathFactory) -> Base:
    """Agent 1.0.0 -> 1.1.0 (the N -> N+1 test's steps, once per worker): the flash after it."""
    d = tmp_path_factory.mktemp("component-n1")
    e = make(base, d)
    try:
        e.start()
        e.hello()
        _update_to_n1(e)
    finally:
        e.close()
    return Base(d / "flash.bin", base.director, base.ecu_key)


def _update_to_n1(e: Component) -> None:
    assert e.info()[M.R_AGENT_VERSION] == "1.0.0"
    e.to_trial(image(BMS, agent_version="1.1.0"), "2.0.0", 2)
    info = e.info()
    # the new agent answers on its trial with a signed INFO that says who it is
    assert info[M.R_BOOT_STATE] == C.BOOT_TRIAL and info[M.R_AGENT_VERSION] == "1.1.0", info
    assert info[M.R_APP][M.A_STATE] == C.APP_HEALTHY
    # before CONFIRM the host proves the new agent can still receive an update
    assert probe_passes(e, bytes(range(256)) * 300)
    r = e.cmd(C.MSG_CONFIRM)
    assert r[:3] == [C.MSG_RESULT, C.MSG_CONFIRM, C.OK], r
    info = e.info()
    assert info[M.R_AGENT_VERSION] == "1.1.0" and info[M.R_BOOT_STATE] == C.BOOT_NORMAL


def test_agent_n_to_n_plus_1(base: Base, tmp_path: Path) -> None:
    e = make(base, tmp_path)
    try:
        e.start()
        e.hello()
        _update_to_n1(e)
        # the agent that answers is the slot's: its files, not the factory copy
        assert (tmp_path / "flash.bin.apps").is_dir()
        e.reboot()  # and it stays after a reset
        assert e.info()[M.R_AGENT_VERSION] == "1.1.0"
    finally:
        e.close()


def _broken(name: str, src: str) -> dict[str, bytes]:
    tree = agent_tree(version="1.2.0")
    tree[name.replace(".", "/") + ".mpy"] = compile_mpy(src, name)
    return tree


FAILS_AT_IMPORT = _broken("otalink.device.agent", 'raise RuntimeError("agent 1.2.0 is broken")\n')
# The request dispatch answers nothing: the agent imports, reads the line, never replies
NEVER_ANSWERS = _broken("otalink.device.serve", "def handle(a, p):\n    return None\n")
# The storage's DATA path corrupts what it hashes: the agent answers, but no update it
# receives (nor a probe) has the bytes that were sent
_SLOTWRITE = (ROOT / "device" / "slotwrite.py").read_text()
_CORRUPT = _SLOTWRITE.replace(
    "    else:\n        s.sha.update(cbuf)\n",
    "    else:\n        cbuf[0] ^= 0x55  # the bug\n        s.sha.update(cbuf)\n",
)
assert _CORRUPT != _SLOTWRITE
CANNOT_RECEIVE = _broken("otalink.device.slotwrite", _CORRUPT)


@pytest.mark.parametrize(
    ("agent", "reason"),
    [(FAILS_AT_IMPORT, C.E_AGENT_FAILED), (NEVER_ANSWERS, C.E_NOT_CONFIRMED)],
    ids=["fails-at-import", "never-answers"],
)
def test_broken_agent_n_plus_2_is_rolled_back_to_n_plus_1(
    base_n1: Base, tmp_path: Path, agent: dict[str, bytes], reason: int
) -> None:
    e = make(base_n1, tmp_path, extra={"flash": {"trial_boots": N}, "trial_ms": 2500})
    try:
        e.start()
        assert e.info()[M.R_AGENT_VERSION] == "1.1.0"
        e.to_trial(image(BMS, agent=agent), "3.0.0", 3)
        st = e.wait_reverted(90)
        assert st.last_error == reason, (st, e.output()[-2000:])
        new = st.slots[1 - st.active]
        assert (new.version, new.state, new.boots) == ("3.0.0", C.SLOT_REJECTED, N)
        info = e.info()
        assert info[M.R_AGENT_VERSION] == "1.1.0" and info[M.R_LAST_ERROR] == reason
        assert e.runner.wdt_resets == 0  # a deliberate reset each time, not the watchdog's
    finally:
        e.close()


def test_agent_that_cannot_receive_fails_the_probe_and_is_reverted(
    base_n1: Base, tmp_path: Path
) -> None:
    e = make(base_n1, tmp_path)
    try:
        e.start()
        e.hello()
        e.to_trial(image(BMS, agent=CANNOT_RECEIVE), "3.0.0", 3)
        info = e.info()
        assert info[M.R_BOOT_STATE] == C.BOOT_TRIAL and info[M.R_AGENT_VERSION] == "1.2.0"
        data = bytes(range(256)) * 300
        r = probe(e, data)
        assert r[:2] == [C.MSG_PROBE, len(data)] and r[2] != hashlib.sha256(data).digest(), r
        assert e.info()[M.R_APP][M.A_FAULT] == C.E_PROBE_FAILED
        # the host does not confirm it: REVERT (signed) and REBOOT
        r = e.cmd(C.MSG_REVERT)
        assert r[:3] == [C.MSG_RESULT, C.MSG_REVERT, C.OK], r
        info = M.decode_report(e.reboot()[1])
        assert info[M.R_AGENT_VERSION] == "1.1.0"
        assert info[M.R_BOOT_STATE] == C.BOOT_REVERTED
        assert info[M.R_LAST_ERROR] == C.E_PROBE_FAILED
        # and N+1 receives: its probe passes
        assert probe_passes(e, data)
    finally:
        e.close()


def test_the_probe_writes_no_flash(base_n1: Base, tmp_path: Path) -> None:
    shutil.copy(base_n1.flash, tmp_path / "before.bin")
    e = make(base_n1, tmp_path)
    try:
        e.start()
        e.hello()
        assert probe_passes(e, bytes(300000))
        # a probe while a transfer is live is refused; ABORT ends a probe like a transfer
        data = bytes(range(256)) * 40
        assert e.request(M.probe(len(data), hashlib.sha256(data).digest(), 0, len(data)))[0] == 5
        assert e.request(M.probe(1, bytes(32), 0, 1)) == [C.MSG_ERROR, C.E_BUSY, 0, C.MSG_PROBE]
        r = e.cmd(C.MSG_ABORT)
        assert r[:3] == [C.MSG_RESULT, C.MSG_ABORT, C.OK], r
        e.kill()
    finally:
        e.close()
    # the slots and the state area are as they were: nothing programmed, no record
    assert (tmp_path / "flash.bin").read_bytes() == (tmp_path / "before.bin").read_bytes()
