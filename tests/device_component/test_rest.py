"""An agent at rest beside its application (device/engine.py, docs/device.md "Agent"): once the
line is quiet its engine, frame reader and config leave the heap; the application keeps
publishing on the application channel meanwhile, and the next frame wakes the agent, which then
answers, verifies and installs exactly as an agent that never rested. Real loader, agent and
application (boards/examples/bms.py) on a pty."""

from __future__ import annotations

import struct
import time

from otalink.protocol import codes as C
from otalink.protocol import messages as M

from tests.device_component._ecu import BMS, Component, image

QUIET_S = 1.2  # past the agent's rest time (agent._REST_MS, 500 ms)
MAX_PAYLOAD = 2048  # the unix board's (boards/unix/board.json): the frame reader's buffer


def _heap_at_rest(e: Component) -> int:
    # measured by the application's own loop 1.5 s after the request (boards/examples/bms.py
    # chan 5 with a delay): by then the line has been quiet and the agent rests
    r = e.app_request(5, struct.pack("<I", 1500))
    assert r[3] == b"ok", r
    time.sleep(2.0)
    r = e.app_request(6, b"")
    return int(struct.unpack("<I", r[3])[0])


def test_an_agent_at_rest_answers_and_installs_like_an_awake_one(ecu: Component) -> None:
    events = len(ecu.events)
    time.sleep(QUIET_S)
    info = ecu.info()  # a signed INFO: the ECU key came back with the config
    assert info[M.R_SLOTS][info[M.R_ACTIVE_SLOT]][M.S_VERSION] == "1.0.0"
    time.sleep(QUIET_S)
    # the application published its state of charge while the agent rested (chan 1, id 0)
    ecu.app_request(2, b"")
    assert [m for m in ecu.events[events:] if m[1] == 1], ecu.events[events:]
    # an update with the line quiet before BEGIN and after END: each step wakes the agent, the
    # director's keys come back with the config, the transfer keeps it awake
    img = image(BMS + b"\n# 2.0.0\n", agent_version="1.0.0")
    r = ecu.transfer(img, version="2.0.0", release_counter=2)
    assert r[:4] == [C.MSG_RESULT, C.MSG_END, C.OK, 0], r
    time.sleep(QUIET_S)
    r = ecu.cmd(C.MSG_ACTIVATE)
    assert r[:3] == [C.MSG_RESULT, C.MSG_ACTIVATE, C.OK], r
    ecu.reboot()
    time.sleep(QUIET_S)
    r = ecu.cmd(C.MSG_CONFIRM)
    assert r[:3] == [C.MSG_RESULT, C.MSG_CONFIRM, C.OK], r
    info = ecu.info()
    act = info[M.R_SLOTS][info[M.R_ACTIVE_SLOT]]
    assert (act[M.S_VERSION], act[M.S_STATE]) == ("2.0.0", C.SLOT_CONFIRMED), info


def test_at_rest_the_engine_leaves_the_heap(ecu: Component) -> None:
    # awake (a request in flight): the engine's code, its frame reader (a max_payload buffer)
    # and the config are live; at rest they are not. (How much: bench/bench_component.py.)
    r = ecu.app_request(5, b"")
    awake = int(struct.unpack("<I", r[3])[0])
    rest = _heap_at_rest(ecu)
    assert rest < awake - MAX_PAYLOAD, (awake, rest)
    assert _heap_at_rest(ecu) <= rest + 512  # waking and resting again leaves nothing behind
