"""pytest plugin for hardware-in-the-loop runs (docs/hil.md).

    pytest tests/tools/deploy --board esp32 --port /dev/ttyUSB0 --line-port /dev/ttyUSB1
    pytest tests/tools/deploy --board unix --port emulate      # the same tests on an emulated board

Options: ``--board NAME`` (a profile in boards/), ``--port PORT`` (the board's REPL serial port;
``emulate`` starts the MicroPython unix port as a board), ``--line-port URL`` (host end of the
agent's UART; the unix emulator knows its own). Tests marked ``@pytest.mark.hardware`` are skipped
only when no ``--board`` is given. Registered by ``pytest_plugins`` in the top-level
tests/conftest.py (pytest reads pytest_addoption only from plugins and the root conftest).
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("otalink-hil", "otalink hardware-in-the-loop")
    group.addoption("--board", default=None, help="board profile name for hardware tests")
    group.addoption("--port", default=None, help="the board's REPL serial port, or 'emulate'")
    group.addoption("--line-port", default=None, help="host end of the agent's UART")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--board", default=None):
        return
    skip = pytest.mark.skip(reason="hardware test: no --board given (see docs/hil.md)")
    for item in items:
        if "hardware" in item.keywords:
            item.add_marker(skip)
