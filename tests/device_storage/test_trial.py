"""Trial boot: bad bundles are rolled back to the confirmed slot by the agent itself, and why.

Each boot is one run of the real agent (device/main.py under MicroPython) on the same flash file,
started by the ECU runner; the state is read back from the flash file by the independent CPython
decoder (host/sim/ecusim/flashfile.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from otalink.host.sim.ecusim import board_geometry
from otalink.protocol import codes as C

from tests.device_storage.agent import app_bundle, ecu, stage
from tests.device_storage.conftest import MpRun

N = board_geometry("unix")["trial_boots"]


def _prepare(mp_run: MpRun, d: Path, bad: bytes) -> None:
    stage(mp_run, d, board_geometry("unix"), [
        (app_bundle("1.0"), "1.0", 1, "confirm"),
        (bad, "2.0", 2, "activate"),
    ])  # fmt: skip


def _expect_reverted(fl, reason: int) -> None:
    st = fl.state()
    assert st is not None
    old, new = st.slots[st.active], st.slots[1 - st.active]
    assert (old.version, old.state) == ("1.0", C.SLOT_CONFIRMED)
    assert (new.version, new.state) == ("2.0", C.SLOT_REJECTED)
    assert st.boot_state == C.BOOT_REVERTED
    assert st.last_error == reason
    assert st.release_floor == 1  # the rejected release never raised the floor


@pytest.mark.parametrize(
    ("body", "selftest", "reason"),
    [
        ('raise RuntimeError("boom")', "return True", C.E_BOOT_CRASH),
        ("", "return False", C.E_SELFTEST),
        ("", "raise ValueError()", C.E_SELFTEST),
    ],
    ids=["raises-on-import", "selftest-false", "selftest-raises"],
)
def test_bad_bundle_reverted_on_first_boot(mp_run: MpRun, tmp_path: Path, body: str,
                                           selftest: str, reason: int) -> None:  # fmt: skip
    _prepare(mp_run, tmp_path, app_bundle("2.0", body, selftest))
    with ecu(tmp_path) as (proc, fl):
        st = fl.state()
        assert st is not None and st.slots[1 - st.active].state == C.SLOT_PENDING
        assert proc.run() == 0
        out = proc.output()
        # the new bundle was tried, then the old one booted in the same run
        assert "APP 2.0 imported" in out and out.index("APP 1.0 imported") > out.index("APP 2.0")
        _expect_reverted(fl, reason)


def test_never_confirmed_reverted_after_n_boots(mp_run: MpRun, tmp_path: Path) -> None:
    _prepare(mp_run, tmp_path, app_bundle("2.0"))
    with ecu(tmp_path) as (proc, fl):
        for boot in range(1, N + 1):
            assert proc.run() == 0
            st = fl.state()
            assert st is not None
            trial = st.slots[st.active]
            assert (trial.version, trial.state, trial.boots) == ("2.0", C.SLOT_TRIAL, boot)
            assert st.boot_state == C.BOOT_TRIAL
        assert proc.run() == 0  # boot N+1: no CONFIRM came
        _expect_reverted(fl, C.E_NOT_CONFIRMED)
        apps = [line for line in proc.output().splitlines() if line.startswith("APP ")]
        assert apps == ["APP 2.0 imported"] * N + ["APP 1.0 imported"]


def test_hard_crash_on_import_counted_then_reverted(mp_run: MpRun, tmp_path: Path) -> None:
    """A bundle that kills the process (no exception to catch) is caught by the boot count."""
    _prepare(mp_run, tmp_path, app_bundle("2.0", "import sys\nsys.exit(3)"))
    with ecu(tmp_path) as (proc, fl):
        for _ in range(N):
            assert proc.run() == 3  # the runner sees a crash (a watchdog reset on a board)
        assert proc.run() == 0
        _expect_reverted(fl, C.E_BOOT_CRASH)
