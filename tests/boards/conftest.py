"""Fixtures of the boards tests: an emulated board (unix port) and the hardware target."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from otalink.host.deploy.profile import Board, load_board
from otalink.host.deploy.unixboard import UnixBoard


@pytest.fixture
def unixboard(tmp_path: Path) -> Iterator[UnixBoard]:
    """A fresh emulated board: the unix port on a pty REPL, its flash root in tmp_path."""
    with UnixBoard(tmp_path / "flash") as board:
        assert board.wait_boots(1, 10)
        yield board


@dataclass
class HilTarget:
    board: Board
    port: str
    line_port: str | None
    emulator: UnixBoard | None


@pytest.fixture
def hil(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HilTarget]:
    """The board named by --board/--port (tests/hilplugin.py); ``--port emulate`` runs the unix
    port as the board. Skipped only when no --board is given."""
    name = request.config.getoption("--board", default=None)
    if not name:
        pytest.skip("hardware test: no --board given (see docs/hil.md)")
    port = request.config.getoption("--port", default=None)
    line_port = request.config.getoption("--line-port", default=None)
    board = load_board(str(name))
    if port == "emulate":
        with UnixBoard(tmp_path / "flash") as emu:
            assert emu.wait_boots(1, 10)
            yield HilTarget(board, emu.port, emu.uart_host, emu)
        return
    if not port:
        pytest.fail("--board given without --port")
    yield HilTarget(board, str(port), line_port, None)
