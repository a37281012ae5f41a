"""Hardware-in-the-loop: deploy to the board given with --board/--port and update it.

    pytest tests/tools/deploy -m hardware --board esp32 --port /dev/ttyUSB0 --line-port /dev/ttyUSB1
    pytest tests/tools/deploy -m hardware --board unix --port emulate

Skipped only when no --board is given (tests/hilplugin.py, docs/hil.md).
"""

from __future__ import annotations

import time

import pytest
from otalink.host.tools.deploy.info import hello_info
from otalink.protocol import codes

from tests.tools.deploy import _flow
from tests.tools.deploy.conftest import HilTarget

pytestmark = pytest.mark.hardware


def test_hil_deploy_answers_hello(hil: HilTarget) -> None:
    d = _flow.deploy_agent(hil.board, hil.port, hil.line_port, ecu_id="hil-ecu", hw_id="hil-hw")
    assert d.report.hello is not None and d.report.hello["signature"] == "valid"
    caps = d.report.hello["caps"]
    # The agent announces the geometry and window its board profile sets.
    assert caps["slot_size"] == hil.board.slots.size
    assert caps["window"] <= hil.board.uart.rxbuf
    again = _flow.deploy_agent(
        hil.board, hil.port, hil.line_port, "hil-ecu", "hil-hw", d.ecu, d.director
    )
    assert again.report.written == []


def test_hil_update_confirm_and_survive_reset(hil: HilTarget) -> None:
    d = _flow.deploy_agent(hil.board, hil.port, hil.line_port, ecu_id="hil-ecu", hw_id="hil-hw")
    url = hil.line_port or (d.report.hello or {}).get("port")
    assert isinstance(url, str)
    info = _flow.update(d, url, "9.1.0", 7)
    slot = info["slots"][info["active_slot"]]  # type: ignore[index]
    assert slot["version"] == "9.1.0" and slot["state"] == codes.SLOT_CONFIRMED
    if hil.emulator is not None:
        # Power cut: the confirmed application is still what boots.
        boots = hil.emulator.boots
        hil.emulator.power_cycle()
        assert hil.emulator.wait_boots(boots + 1, 10)
        deadline = time.monotonic() + 20
        while True:
            try:
                after = hello_info(url, timeout=1.0, verify_key=d.ecu.public)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert after["slots"][after["active_slot"]]["version"] == "9.1.0"
