"""What a board answers to deploy's probe is untrusted (any device may sit on the port): the
real unix-port board answering odd shapes gets a BoardExecError, never a traceback."""

from __future__ import annotations

import re

import pytest
from otalink.host.sim.unixboard import UnixBoard
from otalink.host.tools.deploy.errors import BoardExecError
from otalink.host.tools.deploy.probe import BoardProbe, probe_code
from otalink.host.tools.deploy.repl import BoardRepl


def test_probe_of_a_real_board(unixboard: UnixBoard) -> None:
    repl = BoardRepl.open(unixboard.port, soft_reset=False)
    try:
        probe = repl.eval_probe(probe_code("lib", ["board.json"], "nowiring.json"), BoardProbe)
        assert len(probe.version) >= 3 and probe.version >= (1, 22, 0)
        assert isinstance(probe.mpy, int) and probe.platform == "linux"
        assert probe.files.get("board.json", "") is None  # not there yet
        assert probe.wiring_doc() is None
        for answer, named in [
            ("{'version': ('1', '\\u00b2', '0')}", "version[0]"),  # digits as text: no int()
            ("{'version': (1, 22)}", "version"),
            ("{'mpy': '6'}", "mpy"),
            ("{'files': ['lib/otalink']}", "files"),
            ("[1, 2, 3]", "should be a table"),
            ("hello", "not a Python literal"),
        ]:
            with pytest.raises(BoardExecError, match=re.escape(named)):
                repl.eval_probe(f"print({answer!r})", BoardProbe)
    finally:
        repl.close()


def test_a_torn_wiring_file_is_no_wiring() -> None:
    assert BoardProbe(wiring='{"uart_host": "/dev/pts/9"').wiring_doc() is None
    assert BoardProbe(wiring="[1]").wiring_doc() is None
    assert BoardProbe(wiring='{"uart_host": "/dev/pts/9"}').wiring_doc() == {
        "uart_host": "/dev/pts/9"
    }
