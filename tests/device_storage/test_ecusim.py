"""The ECU runner (host/ecusim): power cuts through the emulator and SIGKILL, resets, bundles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from otalink.host.ecusim import (
    EXIT_RESET,
    BundleFormatError,
    EcuProcess,
    board_geometry,
    build_bundle,
    make_ecu_config,
    parse_bundle,
)
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
