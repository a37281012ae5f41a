"""Fixtures of the boards tests: an emulated board (unix port) and the hardware target."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from otalink.host.sim.unixboard import UnixBoard
from otalink.host.tools.deploy.compile import compile_tree
from otalink.host.tools.deploy.profile import Board, load_board


@pytest.fixture(scope="session")
def agent_mpy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The agent compiled once for the session (x64), so deploys within a test see one tree even
    while protocol/ and device/ change underneath."""
    out = tmp_path_factory.mktemp("agent-mpy") / "x64"
    compile_tree("x64", out=out)
    return out


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
    if not port or not line_port:
        pytest.fail("hardware tests need --port (REPL) and --line-port (agent UART), docs/hil.md")
    yield HilTarget(board, str(port), str(line_port), None)
