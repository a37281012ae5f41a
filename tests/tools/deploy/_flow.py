"""Shared steps of the boards tests: deploy the agent to a board, then update it over its line.

Used by the always-on tests (a UnixBoard emulator) and the hardware tests (a real board given
with --board/--port), so both prove the same path.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from otalink.host.gateway.ecu.client import EcuClient
from otalink.host.gateway.ecu.commands import dev_command_key
from otalink.host.gateway.update.instruction import Instruction, encode_instruction
from otalink.host.keys import KeyPair
from otalink.host.sim.ecusim.bundle import build_bundle
from otalink.host.tools.deploy.deploy import DeployOptions, DeployReport, deploy
from otalink.host.tools.deploy.profile import Board
from otalink.protocol import codes


@dataclass
class Deployed:
    board: Board
    port: str
    line_port: str | None
    ecu_id: str
    hw_id: str
    ecu: KeyPair
    director: KeyPair
    report: DeployReport
    command: KeyPair  # signs ACTIVATE / REBOOT / CONFIRM (the ECU config's command_keys)


def deploy_agent(
    board: Board,
    port: str,
    line_port: str | None = None,
    ecu_id: str = "bench-ecu",
    hw_id: str = "bench-hw",
    ecu: KeyPair | None = None,
    director: KeyPair | None = None,
    mpy_tree: Path | None = None,
    command: KeyPair | None = None,
) -> Deployed:
    ecu = ecu or KeyPair.generate()
    director = director or KeyPair.generate()
    # Named explicitly (not the unix board's default) so a real board gets it too.
    command = command or dev_command_key()
    opts = DeployOptions(
        board=board,
        port=port,
        ecu_id=ecu_id,
        hw_id=hw_id,
        ecu_seed=ecu.seed,
        director_keys=[director.public],
        command_keys=[command.public],
        line_port=line_port,
        hello_timeout=20.0,
        mpy_tree=mpy_tree,
    )
    report = deploy(opts)
    return Deployed(board, port, line_port, ecu_id, hw_id, ecu, director, report, command)


def app_bundle(version: str, payload: int = 0) -> bytes:
    """A two-module application whose self-test passes and which records its version; with
    ``payload``, plus a data module of that many incompressible bytes."""
    app = f"VERSION = {version!r}\nprint('app', VERSION)\n".encode()
    check = b"def selftest():\n    import app\n    return bool(app.VERSION)\n"
    files = {"app.py": app, "check.py": check}
    if payload:
        files["blob.py"] = b"# " + os.urandom(payload // 2).hex().encode()[: payload - 3] + b"\n"
    return build_bundle(files, "app", "check.selftest")


def update(
    d: Deployed, url: str, version: str, release: int, payload: int = 0
) -> dict[str, object]:
    """Install a bundle, activate, reboot into it, confirm; the signed INFO afterwards."""
    image = app_bundle(version, payload)
    now = int(time.time())
    ins = Instruction(
        ecu_id=d.ecu_id,
        hw_id=d.hw_id,
        version=version,
        release_counter=release,
        image_len=len(image),
        sha256=hashlib.sha256(image).digest(),
        issued=now,
        expires=now + 3600,
        target=f"app-{version}.otb",
        kind=0,
    )
    instr = encode_instruction(ins)
    sig = (d.director.keyid, d.director.sign(instr))
    key = d.command.seed
    with EcuClient(url, baud=d.board.uart.baud, verify_key=d.ecu.public, command_key=key) as c:
        c.hello()
        c.install(instr, [sig], image)
        c.activate()
        c.reboot()
    # The board resets; the agent boots the new slot on trial and answers again.
    deadline = time.monotonic() + 30
    while True:
        try:
            with EcuClient(
                url, baud=d.board.uart.baud, verify_key=d.ecu.public, command_key=key
            ) as c:
                info = c.hello()
                if info.boot_state == codes.BOOT_TRIAL:
                    c.confirm()
                info = c.hello()
                info.verify(d.ecu.public)
                return info.to_dict()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
