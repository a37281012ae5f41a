"""The loader (issue 11, parts 1, 3 and 4): the state record's format 1 stays readable, an
agent-only image, the poll form of an application, an application that keeps crashing on a
confirmed slot, the recovery agent when a confirmed slot's agent cannot start, the watchdog fed
through a long slot erase, and an idle agent's CPU. Real loader, agent and application under
the ECU runner, on a pty."""

from __future__ import annotations

import json
import os
import random
import struct
import time
import zlib
from pathlib import Path

import pytest
from otalink.host.sim.ecusim import FlashFile
from otalink.protocol import codes as C
from otalink.protocol import messages as M

from tests.device_component._ecu import BMS, Component, app, image
from tests.device_component.conftest import Base, make

_REC1 = struct.Struct("<HBBIBBBBII" + "BBBBII32s32s" * 2 + "BxxxIII32s")  # format 1 (issue 10)


def _rewrite_as_fmt1(flash: Path, geom: dict[str, int]) -> int:
    """Replace the state area by one format-1 record (an ECU updated before issue 11) holding
    the newest record's fields, at format 1's pitch; returns its seq."""
    st = FlashFile(flash, geom).state()
    assert st is not None and st.fmt == 2
    a, b = st.slots
    body = _REC1.pack(
        0x544F, 1, st.flags, st.seq, st.active, st.boot_state, st.last_error,
        255 if st.transfer_slot is None else st.transfer_slot, st.release_floor, st.trusted_time,
        a.state, a.kind, a.boots, len(a.version), a.release_counter, a.image_len, a.sha256,
        a.version.encode(), b.state, b.kind, b.boots, len(b.version), b.release_counter,
        b.image_len, b.sha256, b.version.encode(), 0, st.wire_len, st.wire_offset,
        st.image_offset, bytes(32),
    )  # fmt: skip
    rec = body + struct.pack("<I", zlib.crc32(body))
    es = geom["erase_size"]
    area = bytearray(b"\xff" * (geom["state_sectors"] * es))
    ws = geom["write_size"]
    pitch1 = (len(rec) + ws - 1) // ws * ws
    at = 3 * pitch1  # not a position of format 2's grid (pitch 244 with write size 4)
    area[at : at + len(rec)] = rec
    with open(flash, "r+b") as f:
        f.seek(geom.get("region", {}).get("offset", 0) + geom["state_offset"])  # type: ignore[union-attr]
        f.write(area)
    return st.seq


def test_a_format_1_state_record_is_read_and_followed_by_format_2(
    base: Base, tmp_path: Path
) -> None:
    e = make(base, tmp_path)
    seq = _rewrite_as_fmt1(tmp_path / "flash.bin", e.geom)
    old = e.state()
    assert old.fmt == 1 and old.seq == seq and old.slots[old.active].version == "1.0.0"
    try:
        e.start()
        info = e.info()  # the loader booted the slot the format-1 record names
        assert info[M.R_SLOTS][info[M.R_ACTIVE_SLOT]][M.S_VERSION] == "1.0.0"
        assert info[M.R_APP] == [C.APP_STARTED, 0, 0]  # fault, wdt_trips: 0 (its pad bytes)
        # the next commit (an update's first record) is format 2, in the next sector
        r = e.transfer(image(BMS + b"# 2\n"), version="2.0.0", release_counter=2)
        assert r[:3] == [C.MSG_RESULT, C.MSG_END, C.OK], r
        new = e.state()
        assert new.fmt == 2 and new.seq > seq
        assert new.slots[new.active] == old.slots[old.active]
        assert new.release_floor == old.release_floor
    finally:
        e.close()


AGENT_ONLY = None


def test_an_agent_only_image(base: Base, tmp_path: Path) -> None:
    e = make(base, tmp_path)
    try:
        e.start()
        e.hello()
        e.to_trial(image(AGENT_ONLY, agent_version="1.0.9"), "2.0.0", 2)
        info = e.info()
        # no application: healthy when its agent runs, so it can be confirmed
        assert info[M.R_APP][M.A_STATE] == C.APP_HEALTHY and info[M.R_AGENT_VERSION] == "1.0.9"
        r = e.cmd(C.MSG_CONFIRM)
        assert r[:3] == [C.MSG_RESULT, C.MSG_CONFIRM, C.OK], r
        r = e.app_request(1, b"?")
        assert r == [C.MSG_ERROR, C.E_APP_CHANNEL, 1, C.MSG_APP], r
    finally:
        e.close()


POLL_FORM = app(
    """
count = [0]


def poll(agent):
    count[0] += 1
    if agent.trial and count[0] == 1:
        agent.healthy(True)
    agent.on_message = lambda chan, data: str(count[0]).encode()
""",
    header="",
)


def test_the_poll_form_of_an_application(ecu: Component) -> None:
    e = ecu
    e.to_trial(image(POLL_FORM), "2.0.0", 2)
    assert e.info()[M.R_APP][M.A_STATE] == C.APP_HEALTHY
    a = int(e.app_request(1, b"")[3])
    time.sleep(0.3)
    b = int(e.app_request(1, b"")[3])
    assert b > a  # poll() called every poll_ms between the agent's frames
    r = e.cmd(C.MSG_CONFIRM)
    assert r[:3] == [C.MSG_RESULT, C.MSG_CONFIRM, C.OK], r


HEALTHY_THEN_CRASH = app("""
async def main(agent):
    trial = agent.trial
    agent.healthy(True)
    for _ in range(20):
        agent.alive()
        await asyncio.sleep_ms(10)
    if not trial:
        raise ValueError("a bug the trial did not meet")
    while True:
        agent.alive()
        await asyncio.sleep_ms(10)
""")


def test_a_confirmed_application_that_keeps_crashing_leaves_the_agent_alone(
    base: Base, tmp_path: Path
) -> None:
    e = make(base, tmp_path)
    try:
        e.start()
        e.hello()
        e.to_trial(image(HEALTHY_THEN_CRASH), "2.0.0", 2)
        e.hello()
        r = e.cmd(C.MSG_CONFIRM)
        assert r[:3] == [C.MSG_RESULT, C.MSG_CONFIRM, C.OK], r
        e.reboot()
        # confirmed, it crashes: a reset; it crashes again after that reset: the agent runs on
        # alone (no reset loop that would keep the ECU from the line)
        assert e.runner.wait_output("again: the agent runs alone", timeout=30), e.output()
        boots = e.runner.boots
        time.sleep(1.5)
        assert e.runner.boots == boots  # no reset loop
        info = e.info()
        assert info[M.R_APP][:2] == [C.APP_FAILED, C.E_APP_CRASH]
        assert info[M.R_SLOTS][info[M.R_ACTIVE_SLOT]][M.S_STATE] == C.SLOT_CONFIRMED
        # and the ECU is still updatable
        r = e.transfer(image(BMS + b"# 3\n"), version="3.0.0", release_counter=3)
        assert r[:3] == [C.MSG_RESULT, C.MSG_END, C.OK], r
    finally:
        e.close()


def test_the_recovery_agent_runs_when_the_slots_agent_cannot_start(
    base: Base, tmp_path: Path
) -> None:
    e = make(base, tmp_path)
    try:
        e.start()
        assert e.info()[M.R_AGENT_VERSION] == "1.0.0"
        e.runner.stop()
        # the confirmed slot's extracted agent is damaged (the flash image is intact)
        st = e.state()
        agent = tmp_path / "flash.bin.apps" / f"slot{st.active}" / "otalink/device/agent.mpy"
        assert agent.is_file()
        agent.write_bytes(b"M\x06not an mpy file")
        e.start()
        info = e.info()
        # the factory agent answers (the base copy: build/mpy's version), the fault shows why
        assert info[M.R_AGENT_VERSION] != "1.0.0"
        assert info[M.R_APP][M.A_FAULT] == C.E_AGENT_FAILED
        assert info[M.R_SLOTS][info[M.R_ACTIVE_SLOT]][M.S_STATE] == C.SLOT_CONFIRMED
        # the ECU stays updatable
        r = e.transfer(image(BMS + b"# 2\n"), version="2.0.0", release_counter=2)
        assert r[:3] == [C.MSG_RESULT, C.MSG_END, C.OK], r
    finally:
        e.close()


def test_an_idle_agent_does_not_spin(ecu: Component) -> None:
    # beside the example application (a 10 ms task): the process's CPU over 2 s of idling is a
    # fraction of a core (bench/bench_component.py measures agent_idle_cpu_percent)
    e = ecu
    pid = e.runner.pid
    assert pid is not None
    t0 = _cpu(pid)
    time.sleep(2.0)
    used = _cpu(pid) - t0
    assert used < 0.5, used  # seconds of CPU in 2 s: a spinning loop takes ~2


def _cpu(pid: int) -> float:
    # utime + stime of the process, in seconds
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def _slow_erase(e: Component, erase_ms: int) -> None:
    # the emulated chip erases a sector in erase_ms (a real NOR: tens to hundreds of ms)
    cfg = json.loads(e.cfg_path.read_text())
    cfg["flash"]["erase_ms"] = erase_ms
    e.cfg_path.write_text(json.dumps(cfg))


@pytest.mark.parametrize("with_app", [False, True], ids=["no-application", "with-application"])
def test_a_slot_erase_longer_than_the_watchdog_keeps_it_fed(
    base: Base, tmp_path: Path, with_app: bool
) -> None:
    """BEGIN erases ~55 sectors at 80 ms each (4.4 s) under a 1 s watchdog: the loader feeds it
    between the erase's slices, in its synchronous loop (no application) as in the event loop
    (was: the synchronous loop fed it only between two polls: the ECU was reset mid-BEGIN)."""
    if with_app:
        e = make(base, tmp_path, extra={"wdt_ms": 1000})
    else:
        e = Component(tmp_path, extra={"wdt_ms": 1000})
    _slow_erase(e, 80)
    try:
        e.start()
        e.hello()
        pad = b"# " + random.Random(7).randbytes(75_000).hex().encode() + b"\n"  # 150 KB
        img = image(BMS, extra={"pad.py": pad})
        r = e.transfer(img, version="2.0.0", release_counter=2)
        assert r[:3] == [C.MSG_RESULT, C.MSG_END, C.OK], r
        assert e.runner.causes == ["power"], (e.runner.causes, e.output()[-2000:])
    finally:
        e.close()
