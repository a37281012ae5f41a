"""`otalink device deploy` end to end against the MicroPython unix port as a board: mpremote over
a pseudo-terminal raw REPL, real micropython processes, the real agent answering HELLO, then an
update over its line. No mocks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from otalink.host.keys import KeyPair, save_seed
from otalink.host.sim.unixboard import UnixBoard
from otalink.host.tools.deploy.deploy import DeployOptions, check_compat, deploy
from otalink.host.tools.deploy.errors import (
    BoardBusyError,
    HelloError,
    MpyMismatchError,
    PortNotFoundError,
)
from otalink.host.tools.deploy.profile import Board, load_board
from otalink.host.tools.deploy.repl import BoardRepl
from otalink.protocol import codes

from tests.tools.deploy import _flow

OTALINK = str(Path(sys.executable).parent / "otalink")


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OTALINK, "device", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_deploy_update_and_redeploy(unixboard: UnixBoard, agent_mpy: Path) -> None:
    board = load_board("unix")
    d = _flow.deploy_agent(board, unixboard.port, mpy_tree=agent_mpy)
    hello = d.report.hello
    assert hello is not None
    assert (hello["ecu_id"], hello["hw_id"], hello["signature"]) == (
        "bench-ecu",
        "bench-hw",
        "valid",
    )
    root = unixboard.root
    # What deploy put on the board's filesystem: the agent as .mpy, profile, config, keys.
    assert (root / "lib/otalink/device/main.mpy").read_bytes()[:2] == b"M\x06"
    assert (root / "keys/ecu_key.bin").read_bytes() == d.ecu.seed
    assert (root / "keys/director_keys.bin").read_bytes() == d.director.public
    cfg = json.loads((root / "otalink.json").read_text())
    assert cfg["ecu_id"] == "bench-ecu" and cfg["line"] == {"path": unixboard.uart_device}
    assert "ecu_seed" not in cfg  # the secret lives only in the key file the profile names
    assert json.loads((root / "board.json").read_text())["name"] == "unix"
    assert "lib/otalink/device/main.mpy" in d.report.written

    info = _flow.update(d, unixboard.uart_host, "2.0.0", 5)
    active = info["slots"][info["active_slot"]]  # type: ignore[index]
    assert active["version"] == "2.0.0" and active["state"] == codes.SLOT_CONFIRMED
    assert info["release_floor"] == 5
    assert b"app 2.0.0" in unixboard.output()  # the bundle booted on the board

    # Deploying the same agent again stops the running agent (Ctrl-C), writes nothing,
    # and the agent comes back with the installed application untouched.
    again = _flow.deploy_agent(
        board, unixboard.port, ecu=d.ecu, director=d.director, mpy_tree=agent_mpy
    )
    assert again.report.written == [] and again.report.removed == []
    assert len(again.report.skipped) == len(d.report.written)
    h2 = again.report.hello
    assert h2 is not None
    assert h2["slots"][h2["active_slot"]]["version"] == "2.0.0"


def unixboard_profile() -> Board:
    return load_board("unix")


def test_deploy_removes_stale_agent_files(unixboard: UnixBoard, agent_mpy: Path) -> None:
    stale = unixboard.root / "lib/otalink/device/old_module.mpy"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"M\x06\x00\x1f")
    d = _flow.deploy_agent(load_board("unix"), unixboard.port, mpy_tree=agent_mpy)
    assert d.report.removed == ["lib/otalink/device/old_module.mpy"]
    assert not stale.exists()
    # Power cut while someone sits in the raw REPL: the board boots its agent again, and the
    # next deploy can still interrupt it with Ctrl-C (the reset restored the line settings).
    repl = BoardRepl.open(unixboard.port, soft_reset=False)
    boots = unixboard.boots
    unixboard.power_cycle()
    repl.close()
    assert unixboard.wait_boots(boots + 1, 10)
    again = _flow.deploy_agent(
        unixboard_profile(), unixboard.port, ecu=d.ecu, director=d.director, mpy_tree=agent_mpy
    )
    assert again.report.written == [] and again.report.hello is not None


@pytest.fixture
def cli_board(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """`otalink device unixboard` as a separate process: (REPL port, agent line, flash root)."""
    root = tmp_path / "cliboard"
    proc = subprocess.Popen(
        [OTALINK, "device", "unixboard", "--root", str(root)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        port = lines[0].rsplit(" ", 1)[-1].strip()
        line = lines[1].rsplit(" ", 1)[-1].strip()
        assert port.startswith("/dev/pts/") and line.startswith("/dev/pts/"), lines
        yield port, line, root
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C powers the board off
        assert proc.wait(timeout=10) == 0


def test_cli_provision_deploy_info(cli_board: tuple[str, str, Path], tmp_path: Path) -> None:
    port, line, root = cli_board
    keys, registry = tmp_path / "keys", tmp_path / "director"
    director = KeyPair.generate()
    save_seed(tmp_path / "director.seed", director.seed)
    p = _cli(
        "provision",
        "--ecu-id",
        "bms-1",
        "--hardware-id",
        "bms-hw",
        "--board",
        "unix",
        "--keys-dir",
        str(keys),
        "--registry",
        str(registry),
        "--json",
    )
    assert p.returncode == 0, p.stdout + p.stderr
    rec = json.loads(p.stdout)
    on_disk = json.loads((registry / "ecus" / "bms-1.json").read_text())
    assert on_disk["public_key"] == rec["public_key"] and on_disk["format"] == "otalink-ecu/1"
    assert (keys / "bms-1.seed").stat().st_mode & 0o077 == 0

    p = _cli(
        "deploy",
        "--board",
        "unix",
        "--port",
        port,
        "--ecu-id",
        "bms-1",
        "--hardware-id",
        "bms-hw",
        "--director-seed",
        str(tmp_path / "director.seed"),
        "--keys-dir",
        str(keys),
        "--registry",
        str(registry),
        "--json",
    )
    assert p.returncode == 0, p.stdout + p.stderr
    out = json.loads(p.stdout)
    assert out["ok"] and out["hello"]["ecu_id"] == "bms-1" and out["hello"]["signature"] == "valid"
    # The board got exactly the provisioned key; the Director record still matches it.
    seed = bytes.fromhex((keys / "bms-1.seed").read_text().strip())
    assert (root / "keys/ecu_key.bin").read_bytes() == seed

    p = _cli("info", "--port", line, "--registry", str(registry), "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    info = json.loads(p.stdout)
    assert info["ecu_id"] == "bms-1" and info["signature"] == "valid"
    p = _cli("info", "--port", line)
    assert p.returncode == 0 and "ECU bms-1" in p.stdout and "slot 0" in p.stdout

    # A second provision with another key for the same ECU is refused without --force.
    (keys / "bms-1.seed").unlink()
    p = _cli(
        "provision",
        "--ecu-id",
        "bms-1",
        "--hardware-id",
        "bms-hw",
        "--keys-dir",
        str(keys),
        "--registry",
        str(registry),
    )
    assert p.returncode == 3 and "deploy.ecu_exists" in p.stderr


def test_wrong_port_is_a_link_error(tmp_path: Path) -> None:
    with pytest.raises(PortNotFoundError):
        BoardRepl.open(str(tmp_path / "ttyNOPE"), timeout=1)
    p = _cli(
        "deploy",
        "--board",
        "unix",
        "--port",
        str(tmp_path / "ttyNOPE"),
        "--director-key",
        "11" * 32,
        "--keys-dir",
        str(tmp_path / "k"),
    )
    assert p.returncode == 5 and "[deploy.port_not_found]" in p.stderr


def test_busy_board_is_refused(tmp_path: Path) -> None:
    # Firmware that swallows Ctrl-C and never offers a REPL: deploy must give up with a code.
    # It says when it is inside its guarded loop: a Ctrl-C that lands while micropython is still
    # starting (tens of ms, much longer on a loaded machine) kills the process or escapes before
    # the ``try`` and drops the board into its REPL, which is not the board this test is about.
    root = tmp_path / "flash"
    root.mkdir()
    (root / "main.py").write_text(
        "import time\nup = False\nwhile True:\n    try:\n        if not up:\n"
        "            up = True\n            print('FIRMWARE-UP')\n        time.sleep(0.05)\n"
        "    except KeyboardInterrupt:\n        pass\n"
    )
    with UnixBoard(root) as board:
        assert board.wait_boots(1, 10)
        assert board.wait_output(b"FIRMWARE-UP", 60), board.output()
        with pytest.raises(BoardBusyError):
            BoardRepl.open(board.port, soft_reset=False, timeout=1.5)
        p = _cli(
            "deploy",
            "--board",
            "unix",
            "--port",
            board.port,
            "--timeout",
            "1.5",
            "--director-key",
            "11" * 32,
            "--keys-dir",
            str(tmp_path / "k"),
            "--json",
        )
        assert p.returncode == 5
        assert json.loads(p.stdout)["error"]["code"] == "deploy.board_busy"
        # Still running its firmware and never fell into its REPL (exit 0/1/130 would; a double
        # Ctrl-C may kill a unix process by signal: then it reboots into main.py).
        assert board.pid is not None
        assert not {0, 1, 130} & set(board.exit_codes), board.exit_codes


def test_wrong_architecture_is_refused(unixboard: UnixBoard, tmp_path: Path) -> None:
    # A profile for an xtensawin board pointed at an x64 MicroPython: refused before any write.
    raw = json.loads(load_board("unix").path.read_text())  # type: ignore[union-attr]
    raw["name"] = "fake"
    raw["micropython"]["arch"] = "xtensawin"
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "board.json").write_text(json.dumps(raw))
    p = _cli(
        "deploy",
        "--board",
        str(tmp_path / "fake" / "board.json"),
        "--port",
        unixboard.port,
        "--director-key",
        "11" * 32,
        "--keys-dir",
        str(tmp_path / "k"),
    )
    assert p.returncode == 3 and "[deploy.mpy_mismatch]" in p.stderr and "x64" in p.stderr
    assert not (unixboard.root / "lib").exists()


@pytest.mark.parametrize(
    ("mpy", "version", "message"),
    [
        (None, (1, 11, 0), "too old"),
        (5 | (2 << 10), (1, 18, 0), "upgrade the board's firmware"),
        (6 | (2 << 8) | (2 << 10), (1, 20, 0), "too old for board profile unix"),
        (6 | (3 << 8) | (10 << 10), (1, 29, 0), "native arch 'xtensawin'"),
        (7 | (2 << 10), (2, 0, 0), "upgrade mpy-cross"),
    ],
)
def test_check_compat_refuses(mpy: int | None, version: tuple[int, int, int], message: str) -> None:
    with pytest.raises(MpyMismatchError, match=message):
        check_compat(load_board("unix"), mpy, version)


def test_check_compat_accepts_matching_board_and_native_headers() -> None:
    board = load_board("unix")
    word = 6 | (3 << 8) | (2 << 10)
    check_compat(board, word, (1, 29, 0), [(6, 0, 0), (6, 3, 2)])
    with pytest.raises(MpyMismatchError):  # native code for another sub-version
        check_compat(board, word, (1, 29, 0), [(6, 2, 2)])


def test_boards_command_lists_profiles() -> None:
    p = _cli("boards", "--json")
    assert p.returncode == 0
    names = {b["name"] for b in json.loads(p.stdout)["boards"] if b["ok"]}
    assert {"unix", "esp32", "rp2", "stm32"} <= names
    assert os.path.isfile(json.loads(p.stdout)["boards_dir"] + "/esp32/board.json")


def test_agent_that_fails_to_start_is_reported_with_its_output(unixboard: UnixBoard) -> None:
    # An ECU id over the wire bound (32): the agent refuses its config at boot. Deploy must say
    # the agent did not answer, and show what the board printed.
    ecu, director = KeyPair.generate(), KeyPair.generate()
    opts = DeployOptions(
        board=load_board("unix"),
        port=unixboard.port,
        ecu_id="x" * 40,
        hw_id="hw",
        ecu_seed=ecu.seed,
        director_keys=[director.public],
        hello_timeout=3.0,
    )
    with pytest.raises(HelloError) as info:
        deploy(opts)
    assert "board output:" in info.value.message
    assert "otalink: config" in info.value.message


def test_frozen_deploy_needs_a_frozen_agent(unixboard: UnixBoard, tmp_path: Path) -> None:
    p = _cli(
        "deploy",
        "--board",
        "unix",
        "--port",
        unixboard.port,
        "--frozen",
        "--director-key",
        "11" * 32,
        "--keys-dir",
        str(tmp_path / "k"),
    )
    assert p.returncode == 1 and "no frozen otalink agent" in p.stderr
    assert not (unixboard.root / "otalink.json").exists()


def test_mpremote_command_talks_to_the_emulated_board(unixboard: UnixBoard) -> None:
    # The plain `mpremote` command works too, with `resume` (no soft reset: Ctrl-D would end the
    # unix REPL; docs/hil.md).
    mpremote = str(Path(sys.executable).parent / "mpremote")

    def run(*args: str) -> str:
        p = subprocess.run(
            [mpremote, "connect", unixboard.port, "resume", *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert p.returncode == 0, p.stderr
        return p.stdout

    assert run("exec", "import sys; print(sys.implementation._mpy & 0xff)").strip() == "6"
    run("fs", "mkdir", ":lib")
    assert (unixboard.root / "lib").is_dir()
    assert "board_wiring.json" in run("fs", "ls", ":")


def test_bundle_command_and_its_refusals(tmp_path: Path) -> None:
    from otalink.host.sim.ecusim.bundle import parse_bundle

    (tmp_path / "app.py").write_text("print('app')\n")
    (tmp_path / "check.py").write_text("def selftest():\n    return True\n")
    out = tmp_path / "app.otb"
    files = [str(tmp_path / "app.py"), str(tmp_path / "check.py")]
    p = _cli("bundle", str(out), *files)
    assert p.returncode == 0, p.stderr
    entry, selftest, modules = parse_bundle(out.read_bytes())
    assert (entry, selftest, sorted(modules)) == ("app", "check.selftest", ["app.py", "check.py"])
    p = _cli("bundle", str(tmp_path / "x.otb"), *files, "--selftest", "noselftest")
    assert p.returncode == 2 and "[bundle.format]" in p.stderr
    assert not (tmp_path / "x.otb").exists()
    p = _cli("bundle", str(tmp_path / "x.otb"), str(tmp_path / "missing.py"))
    assert p.returncode == 4 and not (tmp_path / "x.otb").exists()


def test_unixboard_background_refusals(tmp_path: Path) -> None:
    # --stop with no board, and a stale wiring file naming a pid that is not a board.
    p = _cli("unixboard", "--root", str(tmp_path), "--stop")
    assert p.returncode == 1 and "no board runs" in p.stderr
    (tmp_path / "board_wiring.json").write_text(json.dumps({"pid": os.getpid()}))
    p = _cli("unixboard", "--root", str(tmp_path), "--stop")
    assert p.returncode == 1  # this pytest process is not a unixboard: never signalled
