"""The example applications of the demo's ECUs (boards/examples: body.py, adas.py, faulty.py;
bms.py is test_app.py's), each updated onto a real ECU (loader, agent and the application on a
pty under the ECU runner) and exercised through its documented contract: its periodic work, the
application channel both ways, deferring an offered update, the safe state at ACTIVATE, and
the failing self-test rolled back at once."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from otalink.protocol import codes as C
from otalink.protocol import messages as M

from tests.device_component._ecu import ROOT, Component, image
from tests.device_component.conftest import Base, make

EXAMPLES = ROOT / "boards" / "examples"
BODY = (EXAMPLES / "body.py").read_bytes()
ADAS = (EXAMPLES / "adas.py").read_bytes()
FAULTY = (EXAMPLES / "faulty.py").read_bytes()


def _onto(ecu: Component, src: bytes) -> list[Any]:
    """Update the ECU to the application ``src`` (2.0.0) and confirm it; its INFO."""
    ecu.to_trial(image(src, agent_version="1.0.0"), "2.0.0", 2)
    info = ecu.info()
    assert info[M.R_BOOT_STATE] == C.BOOT_TRIAL, info
    assert info[M.R_APP][M.A_STATE] == C.APP_HEALTHY, info  # its self-test passed
    r = ecu.cmd(C.MSG_CONFIRM)
    assert r[:3] == [C.MSG_RESULT, C.MSG_CONFIRM, C.OK], r
    return ecu.info()


def _until(f: Any, timeout: float = 5.0) -> Any:
    end = time.monotonic() + timeout
    while True:
        v = f()
        if v or time.monotonic() > end:
            return v
        time.sleep(0.05)


def _event(ecu: Component, chan: int, ask: int) -> bool:
    """Whether an event on ``chan`` came (a request on ``ask`` collects what arrived)."""
    ecu.app_request(ask, b"")
    return any(ev[1] == chan for ev in ecu.events)


def _body_state(ecu: Component) -> tuple[int, int, int]:
    r = ecu.app_request(1, b"")
    assert r[:3] == [C.MSG_APP, 1, 1], r
    doors, locked, motor = struct.unpack("<BBH", r[3])
    return doors, locked, motor


@pytest.fixture
def slow_motor_ecu(base: Base, tmp_path: Path) -> Iterator[Component]:
    """The ECU with the agent's default safe_ms (2 s; the component tests run 500 ms)."""
    e = make(base, tmp_path, extra={"safe_ms": 2000})
    e.start()
    e.hello()
    yield e
    e.close()


def test_body_controller(slow_motor_ecu: Component) -> None:
    # The example with a 1 s lock motor (300 ms in the demo): BEGIN's signature check and the
    # host's frames on a loaded machine took longer than 300 ms, so the offer came after the end
    # stop and was accepted. 1 s stays well inside the agent's default safe_ms at ACTIVATE.
    ecu = slow_motor_ecu
    body = BODY.replace(b"MOTOR_MS = 300 ", b"MOTOR_MS = 1000 ")
    assert body != BODY
    _onto(ecu, body)
    assert _body_state(ecu) == (0, 0, 0)
    # a door opens: debounced over 3 periods, then published as an event on channel 1
    assert ecu.app_request(3, b"\x05")[3] == b"ok"
    assert _until(lambda: _body_state(ecu)[0] == 5)
    ecu.app_request(1, b"")  # (reading collects the events that came meanwhile)
    assert any(ev[1] == 1 and ev[3][0] == 5 for ev in ecu.events), ecu.events
    # the lock command starts the motor; an update offered meanwhile is deferred (the image and
    # its signed instruction made first, so the offer comes while the motor runs)
    img = image(body + b"\n# 3.0.0\n")
    instr = ecu.instruction(img, version="3.0.0", release_counter=3)
    doors, locked, motor = struct.unpack("<BBH", ecu.app_request(2, b"\x01")[3])
    assert (doors, locked) == (5, 1) and motor > 0
    r = ecu.begin(img, instr=instr)
    assert r == [C.MSG_DEFER, C.MSG_BEGIN, 1, "lock motor moving"], r
    # the motor reaches its end stop (~1 s): published, and the same
    # update goes through
    assert _until(lambda: _body_state(ecu) == (5, 1, 0))
    ecu.events.clear()
    r = ecu.transfer(img, version="3.0.0", release_counter=3)
    assert r[:4] == [C.MSG_RESULT, C.MSG_END, C.OK, 0], r
    # its 10 ms task kept running through the transfer (lateness figure: bench_component)
    worst, periods, _late = struct.unpack("<III", ecu.app_request(4, b"")[3])
    assert periods > 50 and worst < ecu.runner_cfg("wdt_ms") // 2, (worst, periods)
    # ACTIVATE while the motor runs again: on_activate waits for the end stop, then activates
    ecu.app_request(2, b"\x00")
    r = ecu.cmd(C.MSG_ACTIVATE)
    assert r[:3] == [C.MSG_RESULT, C.MSG_ACTIVATE, C.OK], r
    assert _body_state(ecu)[2] == 0  # the motor had stopped before the activation answered
    assert ecu.app_request(9, b"")[:2] == [C.MSG_ERROR, C.E_APP_CHANNEL]


def test_adas_in_the_poll_form(ecu: Component) -> None:
    _onto(ecu, ADAS)
    # the poll form runs its fusion tick every poll_ms and publishes on channel 1
    t0 = struct.unpack("<I", ecu.app_request(4, b"")[3])[0]
    time.sleep(0.5)
    t1 = struct.unpack("<I", ecu.app_request(4, b"")[3])[0]
    assert t1 - t0 >= 3, (t0, t1)
    assert ecu.app_request(3, struct.pack("<HH", 2000, 2400))[3] == b"ok"  # a closer object
    assert ecu.app_request(2, b"\x01")[3] == b"ok"  # the assist engages

    def fused() -> tuple[int, int, int]:
        r = ecu.app_request(1, b"")
        assert r[:3] == [C.MSG_APP, 1, 1], r
        return struct.unpack("<HBb", r[3])  # type: ignore[return-value]

    assert _until(lambda: abs(fused()[0] - 2100) < 40)  # 3:1 radar / camera, smoothed
    rng, active, torque = fused()
    assert active == 1 and torque > 0, (rng, active, torque)
    assert _until(lambda: _event(ecu, 1, 4))  # the fused range published (every 10 ticks)
    # an update offered while the assist is active is deferred with its reason
    img = image(ADAS + b"\n# 3.0.0\n")
    r = ecu.begin(img, instr=ecu.instruction(img, version="3.0.0", release_counter=3))
    assert r == [C.MSG_DEFER, C.MSG_BEGIN, 10, "assist active"], r
    # disengaged, the update goes through; engaged again, ACTIVATE brings the safe state first
    ecu.app_request(2, b"\x00")
    r = ecu.transfer(img, version="3.0.0", release_counter=3)
    assert r[:4] == [C.MSG_RESULT, C.MSG_END, C.OK, 0], r
    ecu.app_request(2, b"\x01")
    assert _until(lambda: fused()[2] > 0)
    r = ecu.cmd(C.MSG_ACTIVATE)
    assert r[:3] == [C.MSG_RESULT, C.MSG_ACTIVATE, C.OK], r
    assert fused()[1:] == (0, 0)  # disengaged, no torque request


def test_a_failing_self_test_is_rolled_back_at_once(ecu: Component) -> None:
    boots = ecu.to_trial(image(FAULTY, agent_version="1.0.0"), "2.0.0", 2)
    st = ecu.wait_reverted()
    assert st.last_error == C.E_SELFTEST
    assert st.slots[1 - st.active].boots == 1  # at once: no boot count, no watchdog
    assert ecu.runner.wdt_resets == 0
    assert "lock actuator self-test FAILED" in ecu.output()
    ecu.wait_boots(boots + 2)  # the trial's boot, then the fallback's
    info = ecu.info()
    assert info[M.R_BOOT_STATE] == C.BOOT_REVERTED
    assert info[M.R_SLOTS][info[M.R_ACTIVE_SLOT]][M.S_VERSION] == "1.0.0"
    r = ecu.app_request(1, b"")
    assert r[:3] == [C.MSG_APP, 1, 1] and len(r[3]) == 2, r  # the BMS of 1.0.0: its soc
