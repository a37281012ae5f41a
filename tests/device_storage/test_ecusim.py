"""The ECU runner (host/sim/ecusim): power cuts via the emulator and SIGKILL, resets, bundles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from otalink.host.sim.ecusim import (
    EXIT_RESET,
    BundleFormatError,
    EcuProcess,
    board_geometry,
    build_bundle,
    make_ecu_config,
    parse_bundle,
)
from otalink.host.sim.ecusim.boardfs import board_lib
from otalink.protocol import codes as C

from tests.device_storage.agent import app_bundle, ecu, stage
from tests.device_storage.conftest import MpRun


def test_bundle_roundtrip_and_limits() -> None:
    files = {"app.py": b"x = 1\n", "lib/util.mpy": b"M\x06\x00"}
    data = build_bundle(files, "app", "app.selftest")
    assert data[:4] == b"OTB1"
    assert parse_bundle(data) == ("app", "app.selftest", files)
    with pytest.raises(BundleFormatError):
        build_bundle({"../evil.py": b""}, "app", "app.selftest")
    with pytest.raises(BundleFormatError):
        build_bundle(files, "app", "noselftest")
    with pytest.raises(BundleFormatError):
        build_bundle({"x" * 60 + ".py": b""}, "app", "app.t")


def test_config_carries_board_geometry(tmp_path: Path) -> None:
    cfg = make_ecu_config("e", "h", [bytes(32)], bytes(32), tmp_path / "f.bin", "/dev/null",
                          flash={"cut_after": 3})  # fmt: skip
    assert cfg["flash"] == {"path": str(tmp_path / "f.bin"), "cut_after": 3}
    geom = board_geometry("unix")
    assert geom["slot_size"] > 0 and len(geom["slot_offsets"]) == 2
    profile = Path(__file__).resolve().parents[2] / "boards" / "unix" / "board.json"
    if profile.is_file():  # the boards tree is another engineer's; defaults apply without it
        assert cfg["board_path"] == str(profile)
        assert geom["erase_size"] == json.loads(profile.read_text())["flash"]["erase_size"]


def _staged(mp_run: MpRun, d: Path) -> None:
    stage(mp_run, d, board_geometry("unix"), [
        (app_bundle("1.0"), "1.0", 1, "confirm"),
        (app_bundle("2.0"), "2.0", 2, "activate"),
    ])  # fmt: skip


@pytest.mark.parametrize("tear", [False, True])
def test_armed_cut_kills_agent_at_first_flash_op(mp_run: MpRun, tmp_path: Path, tear: bool) -> None:
    """cut after 0 ops: the trial-start record never lands; the agent dies by SIGKILL at once."""
    _staged(mp_run, tmp_path)
    with ecu(tmp_path) as (proc, fl):
        before = fl.state()
        assert before is not None
        proc.arm_cut(0, tear)
        assert proc.run() == -9
        assert "APP" not in proc.output()  # nothing ran after the cut, not even the bundle
        assert fl.state() == before  # a torn record is invisible
        assert proc.run() == 0  # power back: the trial starts normally
        st = fl.state()
        assert st is not None and st.slots[st.active].state == C.SLOT_TRIAL
        assert "APP 2.0 imported" in proc.output()


def test_power_cut_while_running_then_boots_again(mp_run: MpRun, tmp_path: Path) -> None:
    _staged(mp_run, tmp_path)
    with ecu(tmp_path, run_ms=60000) as (proc, fl):
        proc.supervise()
        assert proc.wait_output("APP 2.0 imported")
        proc.power_cut()
        assert proc.wait_output("APP 2.0 imported", count=2)
        assert proc.exit_codes[0] == -9
        proc.stop()
        st = fl.state()
        assert st is not None and st.slots[st.active].version == "2.0"
        assert st.slots[st.active].boots == 2  # second trial boot counted


def test_supervisor_restarts_on_reset_and_crash(tmp_path: Path) -> None:
    script = tmp_path / "fake_agent.py"
    script.write_text(
        "import sys\n"
        "p = sys.argv[1] + '.count'\n"
        "try:\n    n = int(open(p).read())\nexcept OSError:\n    n = 0\n"
        "open(p, 'w').write(str(n + 1))\n"
        "sys.exit((64, 1, 0)[n])\n"
    )
    cfg = tmp_path / "cfg.json"
    cfg.write_text("{}")
    with EcuProcess(cfg, script=script) as proc:
        proc.supervise()
        assert proc.wait_stopped(20) == 0
        assert proc.boots == 3
        assert proc.exit_codes == [EXIT_RESET, 1, 0]


def _scripted_agent(tmp_path: Path, statuses: list[int], sleep_s: float = 0.0) -> Path:
    """A stand-in agent whose n-th run exits with ``statuses[n]`` (the last one repeats),
    optionally after ``sleep_s`` seconds; the run count survives restarts in a file."""
    script = tmp_path / "fake_agent.py"
    script.write_text(
        "import sys, time\n"
        "p = sys.argv[1] + '.count'\n"
        "try:\n    n = int(open(p).read())\nexcept OSError:\n    n = 0\n"
        "open(p, 'w').write(str(n + 1))\n"
        f"s = {statuses!r}\n"
        f"time.sleep({sleep_s!r})\n"
        "sys.exit(s[min(n, len(s) - 1)])\n"
    )
    (tmp_path / "cfg.json").write_text("{}")
    return script


def test_requested_resets_never_count_as_crashes(tmp_path: Path) -> None:
    """A board resets on every REBOOT: more REBOOTs than max_restarts keep the ECU alive."""
    script = _scripted_agent(tmp_path, [EXIT_RESET] * 6 + [0])
    with EcuProcess(tmp_path / "cfg.json", script=script, max_restarts=2) as proc:
        proc.supervise()
        assert proc.wait_stopped(30) == 0
        assert proc.exit_codes == [EXIT_RESET] * 6 + [0]
        assert proc.boots == 7 and proc.crashes == 0 and proc.stop_reason == "stopped"


def test_crash_loop_is_still_bounded(tmp_path: Path) -> None:
    script = _scripted_agent(tmp_path, [EXIT_RESET, 1])
    with EcuProcess(tmp_path / "cfg.json", script=script, max_restarts=3) as proc:
        proc.supervise()
        assert proc.wait_stopped(30) == 1
        # One REBOOT, then the first crash and three watchdog restarts that crash again.
        assert proc.exit_codes == [EXIT_RESET, 1, 1, 1, 1]
        assert proc.crashes == 4 and proc.stop_reason == "crash loop"


def test_crash_after_a_stable_run_starts_a_new_count(tmp_path: Path) -> None:
    """Occasional crashes of an ECU that ran fine in between are not a loop: each one is
    restarted (a board's watchdog never gives up)."""
    script = _scripted_agent(tmp_path, [1, 1, 1, 1, 0], sleep_s=0.4)
    with EcuProcess(tmp_path / "cfg.json", script=script, max_restarts=1, stable_s=0.2) as proc:
        proc.supervise()
        assert proc.wait_stopped(30) == 0
        assert proc.exit_codes == [1, 1, 1, 1, 0] and proc.crashes == 4


def test_power_cuts_are_not_crashes(tmp_path: Path) -> None:
    """power_cut() is asked for: a supervised ECU boots again however often the power goes."""
    script = _scripted_agent(tmp_path, [0], sleep_s=60)
    with EcuProcess(tmp_path / "cfg.json", script=script, max_restarts=1) as proc:
        proc.supervise()
        for n in range(2, 6):
            proc.power_cut()
            assert proc.wait_boots(n, 10), proc.exit_codes
        assert proc.exit_codes == [-9] * 4 and proc.crashes == 0
        assert proc.poll() is None  # still running


def test_armed_cut_is_a_power_cut_not_a_crash(mp_run: MpRun, tmp_path: Path) -> None:
    """The flash emulator's armed power cut (SIGKILL from inside) is not a crash either."""
    _staged(mp_run, tmp_path)
    with ecu(tmp_path, run_ms=60000) as (proc, _fl):
        proc.max_restarts = 0
        proc.arm_cut(0)
        proc.supervise()
        assert proc.wait_output("APP 2.0 imported")  # booted again after the cut
        assert proc.exit_codes[0] == -9 and proc.crashes == 0


def test_power_off_at_next_reset(tmp_path: Path) -> None:
    """An ECU that never comes back from its restart (tests of the gateway's timeouts)."""
    script = _scripted_agent(tmp_path, [EXIT_RESET, 0])
    with EcuProcess(tmp_path / "cfg.json", script=script) as proc:
        proc.power_off_at_next_reset()
        proc.supervise()
        assert proc.wait_stopped(30) == EXIT_RESET
        assert proc.boots == 1 and proc.stop_reason == "powered off"


def test_the_ecu_folder_holds_its_code_at_lib(tmp_path: Path) -> None:
    # board_lib: a link the ECUs of one folder share, made again when the tree moves, and the
    # absolute path when the folder's lib/ is something else
    tree_a = tmp_path / "tree-a"
    tree_b = tmp_path / "tree-b"
    tree_a.mkdir()
    tree_b.mkdir()
    root = tmp_path / "ecu"
    root.mkdir()
    assert board_lib(root, tree_a) == "lib" and (root / "lib").resolve() == tree_a
    assert board_lib(root, tree_a) == "lib"
    assert board_lib(root, tree_b) == "lib" and (root / "lib").resolve() == tree_b
    other = tmp_path / "board"
    (other / "lib").mkdir(parents=True)
    assert board_lib(other, tree_a) == str(tree_a)


def test_the_agent_runs_from_lib_with_its_config_by_name(tmp_path: Path) -> None:
    # the process an ECU runs: its modules' paths (__file__, interned for good) are relative
    script = tmp_path / "where.py"
    script.write_text(
        "import sys\n"
        "from otalink.protocol import codes\n"
        "print('FILE', codes.__file__, sys.argv[-1])\n"
        "sys.exit(0)\n"
    )
    cfg = tmp_path / "ecu.json"
    cfg.write_text("{}")
    proc = EcuProcess(cfg, script=script)
    try:
        proc.start()
        assert proc.wait_output("FILE")
        proc.wait()
        assert "FILE lib/otalink/protocol/codes.mpy ecu.json" in proc.output(), proc.output()
    finally:
        proc.stop()
