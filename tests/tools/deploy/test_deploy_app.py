"""``otalink device deploy --app``: the loader and agent, then the ECU's application installed
beside them as a signed update on the emulated board (UnixBoard), confirmed once it reports
healthy; a failing application is rolled back and the ECU keeps answering."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from otalink.host.gateway.ecu import EcuClient
from otalink.host.gateway.ecu.commands import dev_command_key
from otalink.host.keys import KeyPair
from otalink.host.sim.unixboard import UnixBoard
from otalink.host.tools.deploy.app import AppInstallError, AppSigner
from otalink.host.tools.deploy.deploy import DeployOptions, deploy
from otalink.host.tools.deploy.errors import DeployError
from otalink.host.tools.deploy.profile import load_board
from otalink.protocol import codes

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "boards" / "examples"


def _opts(
    board: UnixBoard, mpy: Path, director: KeyPair, ecu: KeyPair, **kw: object
) -> DeployOptions:
    return DeployOptions(
        board=load_board("unix"),
        port=board.port,
        ecu_id="bms-1",
        hw_id="bms-hw",
        ecu_seed=ecu.seed,
        director_keys=[director.public],
        mpy_tree=mpy,
        app_signer=AppSigner(director.seed, dev_command_key().seed),
        **kw,  # type: ignore[arg-type]
    )


def test_deploy_installs_the_application_beside_the_agent(
    unixboard: UnixBoard, agent_mpy: Path
) -> None:
    director, ecu = KeyPair.generate(), KeyPair.generate()
    report = deploy(_opts(unixboard, agent_mpy, director, ecu, app=EXAMPLES / "bms.py"))
    assert report.hello is not None and report.app is not None
    assert report.app["version"] == "1.0.0" and report.app["release_counter"] == 1
    assert report.app["app_state"] == codes.APP_HEALTHY
    with EcuClient(unixboard.uart_host, verify_key=ecu.public) as c:
        info = c.hello()
        assert info.active.state == codes.SLOT_CONFIRMED and info.active.version == "1.0.0"
        assert info.active.sha256.hex() == report.app["sha256"]
        assert info.app.state == codes.APP_HEALTHY
        # the application runs: the BMS answers its state of charge on channel 1
        (soc,) = struct.unpack("<H", c.app(1, b""))
        assert 0 <= soc <= 1000
    # a failing application is rolled back by the ECU, with its reason; the BMS runs on
    with pytest.raises(AppInstallError, match=f"reason {codes.E_SELFTEST}"):
        deploy(
            _opts(
                unixboard, agent_mpy, director, ecu, app=EXAMPLES / "faulty.py", app_version="1.0.1"
            )
        )
    with EcuClient(unixboard.uart_host, verify_key=ecu.public) as c:
        info = c.hello()
        assert info.active.version == "1.0.0" and info.last_error == codes.E_SELFTEST
        assert len(c.app(1, b"")) == 2


def test_app_needs_a_signer_and_a_readable_app(unixboard: UnixBoard, tmp_path: Path) -> None:
    director, ecu = KeyPair.generate(), KeyPair.generate()
    base = _opts(unixboard, tmp_path, director, ecu)
    for bad, msg in (
        (DeployOptions(**{**base.__dict__, "app": tmp_path / "none.py"}), "none.py"),
        (DeployOptions(**{**base.__dict__, "app": tmp_path}), "no app.py"),
        (DeployOptions(**{**base.__dict__, "app": EXAMPLES / "bms.py", "app_signer": None}),
         "--director-seed"),
    ):  # fmt: skip
        with pytest.raises(DeployError, match=msg):
            deploy(bad)  # refused before the board is touched
