"""The application beside the agent (issue 11, parts 1-2): a whole update with the example BMS
application running and checked for stalls, an application that defers an update, one that
misses the safe-state deadline, the trial's health gate, and the application channel under a
full-speed update in both directions. Real loader, agent and application on a pty."""

from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import Any

from otalink.protocol import codes as C
from otalink.protocol import messages as M

from tests.device_component._ecu import BMS, Component, app, image
from tests.device_component.conftest import Base, make


def _stats(e: Component) -> tuple[int, int, int]:
    r = e.app_request(2, b"")
    assert r[:3] == [C.MSG_APP, 2, 1], r
    worst, periods, late = struct.unpack("<III", r[3])
    return worst, periods, late


def _other(info: list[Any]) -> list[Any]:
    return info[M.R_SLOTS][1 - info[M.R_ACTIVE_SLOT]]


def test_whole_update_with_the_application_running(ecu: Component) -> None:
    # the application's 10 ms task keeps running through BEGIN (verification, erase), every
    # DATA frame and END (the read-back hash): the agent never holds the loop long enough for
    # the watchdog, and the periods keep coming (their worst lateness: bench/bench_component.py)
    _w0, p0, _l0 = _stats(ecu)
    t0 = time.monotonic()
    img = image(BMS + b"\n# 2.0.0\n", agent_version="1.0.0")
    r = ecu.transfer(img, version="2.0.0", release_counter=2)
    assert r[:4] == [C.MSG_RESULT, C.MSG_END, C.OK, 0], r
    worst, p1, _late = _stats(ecu)
    elapsed_ms = (time.monotonic() - t0) * 1000
    # it kept running: at least a quarter of its periods (a loaded 2-core machine shares the
    # CPU with other processes; a starved loop would get a handful)
    assert p1 - p0 >= elapsed_ms / 10 / 4, (p0, p1, elapsed_ms)
    assert worst < ecu.runner_cfg("wdt_ms") // 2, worst  # never near a watchdog reset
    assert ecu.runner.wdt_resets == 0
    r = ecu.cmd(C.MSG_ACTIVATE)
    assert r[:3] == [C.MSG_RESULT, C.MSG_ACTIVATE, C.OK], r
    info = M.decode_report(ecu.reboot()[1])
    assert info[M.R_BOOT_STATE] == C.BOOT_TRIAL
    # the trial application proved itself (its self-test: agent.healthy()): confirmable
    assert info[M.R_APP][M.A_STATE] == C.APP_HEALTHY
    r = ecu.cmd(C.MSG_CONFIRM)
    assert r[:3] == [C.MSG_RESULT, C.MSG_CONFIRM, C.OK], r
    info = ecu.info()
    assert info[M.R_SLOTS][info[M.R_ACTIVE_SLOT]][M.S_VERSION] == "2.0.0"
    assert info[M.R_SLOTS][info[M.R_ACTIVE_SLOT]][M.S_STATE] == C.SLOT_CONFIRMED


def test_the_application_defers_an_update(ecu: Component) -> None:
    # the BMS defers while its contactor is closed: DEFER with its reason, nothing erased
    assert ecu.app_request(3, b"\x01")[3] == b"ok"
    img = image(BMS + b"\n# 2.0.0\n")
    before = ecu.state()
    r = ecu.begin(img, instr=ecu.instruction(img, version="2.0.0", release_counter=2))
    assert r == [C.MSG_DEFER, C.MSG_BEGIN, 5, "contactor closed"], r
    assert ecu.state() == before  # no record, no erase: the transfer never started
    assert _other(ecu.info())[M.S_STATE] == before.slots[1 - before.active].state
    # contactor open: the same update goes through
    assert ecu.app_request(3, b"\x00")[3] == b"ok"
    r = ecu.transfer(img, version="2.0.0", release_counter=2)
    assert r[:4] == [C.MSG_RESULT, C.MSG_END, C.OK, 0], r


SLOW_SAFE = BMS.replace(
    b"    _contactor[0] = False\n    await asyncio.sleep_ms(20)\n",
    b"    _contactor[0] = False\n    await asyncio.sleep_ms(3000)  # misses agent.safe_ms\n",
)


def test_an_application_that_misses_the_safe_state_deadline(base: Base, tmp_path: Path) -> None:
    assert SLOW_SAFE != BMS
    e = make(base, tmp_path)
    try:
        e.start()
        e.hello()
        e.install(image(SLOW_SAFE), "2.0.0", 2)
        r = e.transfer(image(SLOW_SAFE + b"# 3\n"), version="3.0.0", release_counter=3)
        assert r[:3] == [C.MSG_RESULT, C.MSG_END, C.OK], r
        # ACTIVATE asks the application for a safe state: not within safe_ms, refused
        r = e.cmd(C.MSG_ACTIVATE)
        assert r[:3] == [C.MSG_RESULT, C.MSG_ACTIVATE, C.E_NOT_SAFE], r
        assert _other(e.info())[M.S_STATE] == C.SLOT_VERIFIED  # nothing activated
        # a REBOOT no ACTIVATE preceded asks too, and is refused: no reset
        boots = e.runner.boots
        r = e.cmd(C.MSG_REBOOT)
        assert r[:3] == [C.MSG_RESULT, C.MSG_REBOOT, C.E_NOT_SAFE], r
        time.sleep(0.5)
        assert e.runner.boots == boots
        assert e.info()[M.R_APP][M.A_STATE] == C.APP_HEALTHY  # still running, unharmed
    finally:
        e.close()


NEVER_HEALTHY = app("""
async def main(agent):
    while True:
        agent.alive()
        await asyncio.sleep_ms(10)
""")
UNHEALTHY = app("""
async def main(agent):
    if agent.trial:
        agent.healthy(False)  # its own check failed: roll back now
    while True:
        agent.alive()
        await asyncio.sleep_ms(10)
""")


def test_only_a_healthy_trial_application_can_be_confirmed(ecu: Component) -> None:
    ecu.to_trial(image(NEVER_HEALTHY), "2.0.0", 2)
    info = ecu.info()
    assert info[M.R_BOOT_STATE] == C.BOOT_TRIAL
    assert info[M.R_APP][M.A_STATE] == C.APP_STARTED
    r = ecu.cmd(C.MSG_CONFIRM)
    assert r[:3] == [C.MSG_RESULT, C.MSG_CONFIRM, C.E_NOT_HEALTHY], r
    # the host gives up on it: REVERT (its own decision, no fault recorded) and REBOOT
    r = ecu.cmd(C.MSG_REVERT)
    assert r[:3] == [C.MSG_RESULT, C.MSG_REVERT, C.OK], r
    info = M.decode_report(ecu.reboot()[1])
    assert info[M.R_BOOT_STATE] == C.BOOT_REVERTED and info[M.R_LAST_ERROR] == C.E_ABORTED


def test_an_application_that_reports_unhealthy_is_rolled_back_at_once(ecu: Component) -> None:
    ecu.to_trial(image(UNHEALTHY), "2.0.0", 2)
    st = ecu.wait_reverted()
    assert st.last_error == C.E_SELFTEST
    assert st.slots[1 - st.active].boots == 1  # no boot count to wait for


CHATTY = BMS.replace(b"PUBLISH_MS = 1000", b"PUBLISH_MS = 20")


def test_the_application_channel_under_a_full_speed_update(base: Base, tmp_path: Path) -> None:
    # both ways while DATA flows at full speed: the host's requests are answered between the
    # frames, the application's events keep coming, and the transfer completes untouched
    assert CHATTY != BMS
    e = make(base, tmp_path)
    try:
        e.start()
        e.hello()
        e.install(image(CHATTY), "2.0.0", 2)
        img = image(CHATTY + b"#" + bytes(120000).hex().encode() + b"\n")  # ~240 KB
        ack = e.begin(img, instr=e.instruction(img, version="3.0.0", release_counter=3))
        assert ack[0] == C.MSG_ACK, ack
        e.events.clear()
        t0 = time.monotonic()
        chunk = e.payload - M.DATA_OVERHEAD
        window = 4 * (chunk + 16)
        acked = nxt = 0
        asked = answered = 0
        replies: dict[int, list[Any]] = {}
        while acked < len(img):
            while nxt < len(img) and nxt + min(chunk, len(img) - nxt) <= acked + window:
                n = min(chunk, len(img) - nxt)
                e.send(M.data(nxt, img[nxt : nxt + n]))
                nxt += n
                if (nxt // chunk) % 3 == 0:  # a request every third frame, in the stream
                    asked += 1
                    e.send(M.app(1, asked, b"soc?"))
            m = e.recv(10)
            if m[0] == C.MSG_APP:
                replies[m[2]] = m
                answered += 1
                continue
            assert m[0] == C.MSG_ACK, m
            acked = max(acked, m[1])
        while answered < asked:
            m = e.recv(5)
            assert m[0] == C.MSG_APP, m
            replies[m[2]] = m
            answered += 1
        r = e.request(M.end(len(img)), 30)
        assert r[:4] == [C.MSG_RESULT, C.MSG_END, C.OK, 0], r
        assert asked >= 5 and sorted(replies) == list(range(1, asked + 1))
        assert all(r[1] == 1 and len(r[3]) == 2 for r in replies.values())
        # the application's events went out during the transfer too (every 20 ms): at least a
        # third of the periods the transfer lasted (an unpaced pty moves ~240 KB in ~0.1 s)
        took = time.monotonic() - t0
        assert len(e.events) >= max(2, int(took / 0.020 / 3)), (len(e.events), took)
        assert all(ev[1] == 1 and len(ev[3]) == 2 for ev in e.events)
        # an unknown channel: the agent answers for the application
        r = e.app_request(9, b"?", msg_id=77)
        assert r == [C.MSG_ERROR, C.E_APP_CHANNEL, 9, C.MSG_APP], r
    finally:
        e.close()
