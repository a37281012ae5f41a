"""``otalink device deploy --app PATH``: the ECU's application, installed as a signed update.

Public interface (stable):
    app_modules(path: Path) -> dict[str, bytes]   the application's modules: one file (becomes
                          ``app.py`` / ``app.mpy``) or a folder holding ``app.py`` (its .py/.mpy
                          files, relative paths kept)
    app_image(modules, agent: dict[str, bytes]) -> bytes   a format-2 image (``app`` beside the
                          agent files; empty: the board's frozen agent runs it)
    AppSigner(director_seed: bytes, command_seed: bytes)   the keys that sign the install
    install_app(url, baud, image, *, ecu_id, hw_id, verify_key, signer, version,
                timeout=60.0) -> AppInstall
        HELLO -> a signed instruction (release counter: the ECU's floor + 1) -> the transfer
        -> ACTIVATE -> REBOOT -> the trial boot answers with a healthy application -> CONFIRM;
        AppInstallError (code ``deploy.app_failed``) with the ECU's reason otherwise
    AppInstall (TypedDict): version, release_counter, image_len, sha256, agent_version,
                app_state, seconds

The same path as every update in the field (docs/deploy.md "The application"): the image is
verified by the agent against the Director key, lands in the inactive slot, boots on trial and
is kept only once its application reported healthy; a failing application rolls back to what
ran before, and the ECU stays reachable.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from otalink.host.gateway.ecu import EcuClient, EcuError, EcuInfo
from otalink.host.gateway.update.instruction import Instruction, encode_instruction
from otalink.host.keys import KeyPair
from otalink.host.tools.bundle import BundleFormatError, pack_image
from otalink.host.tools.deploy.errors import DeployError
from otalink.protocol import codes

APP_ENTRY = "app"
POLL_S = 0.3


class AppInstallError(DeployError):
    """The application could not be installed (refused, rolled back, or never healthy)."""

    code = "deploy.app_failed"


class AppInstall(TypedDict):
    """What ``--app`` installed (``otalink device deploy --json``: ``app``)."""

    version: str
    release_counter: int
    image_len: int
    sha256: str
    agent_version: str
    app_state: int
    seconds: float


@dataclass(frozen=True)
class AppSigner:
    """The private keys that sign the install: a Director key the ECU trusts (the instruction)
    and a command key it trusts (ACTIVATE, REBOOT, CONFIRM)."""

    director_seed: bytes
    command_seed: bytes


def app_modules(path: Path) -> dict[str, bytes]:
    """The application's modules from a file or a folder (see the module doc)."""
    try:
        if path.is_dir():
            files = {
                f.relative_to(path).as_posix(): f.read_bytes()
                for f in sorted(path.rglob("*"))
                if f.is_file() and f.suffix in (".py", ".mpy") and "__pycache__" not in f.parts
            }
            if f"{APP_ENTRY}.py" not in files and f"{APP_ENTRY}.mpy" not in files:
                raise DeployError(f"--app {path}: the folder has no {APP_ENTRY}.py (the entry)")
            return files
        if path.suffix not in (".py", ".mpy"):
            raise DeployError(f"--app {path}: a .py / .mpy file or a folder is expected")
        return {f"{APP_ENTRY}{path.suffix}": path.read_bytes()}
    except OSError as exc:
        raise DeployError(f"--app {path}: {exc.strerror or exc}") from exc


def app_image(modules: dict[str, bytes], agent: dict[str, bytes]) -> bytes:
    """The format-2 image of the application beside ``agent`` (DeployError if it cannot be)."""
    try:
        return pack_image(modules, APP_ENTRY, agent)
    except BundleFormatError as exc:
        raise DeployError(f"--app: {exc}") from exc


def _hello_until(c: EcuClient, deadline: float) -> EcuInfo:
    """HELLO until the ECU answers (it is rebooting), at most until ``deadline``."""
    while True:
        try:
            c.forget_session()
            return c.hello(timeout=1.0)
        except EcuError:
            if time.monotonic() > deadline:
                raise
            time.sleep(POLL_S)


def install_app(
    url: str,
    baud: int | None,
    image: bytes,
    *,
    ecu_id: str,
    hw_id: str,
    verify_key: bytes,
    signer: AppSigner,
    version: str,
    timeout: float = 60.0,
) -> AppInstall:
    """Install ``image`` over the agent's line as a signed update (see the module doc)."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    director = KeyPair(signer.director_seed)
    sha = hashlib.sha256(image).digest()
    try:
        with EcuClient(url, baud=baud, verify_key=verify_key, command_key=signer.command_seed) as c:
            info = c.hello()
            counter = info.release_floor + 1
            now = int(time.time())
            ins = Instruction(ecu_id, hw_id, version, counter, len(image), sha, now - 60,
                              now + 3600, f"app-{version}.otb", 0)  # fmt: skip
            instr = encode_instruction(ins)
            c.install(instr, [(director.keyid, director.sign(instr))], image)
            c.activate()
            try:
                c.reboot()
            except EcuError as exc:
                if exc.wire_code != codes.E_TIMEOUT:
                    raise  # (a lost RESULT is fine: the board resets)
            info = _trial(c, sha, deadline)
            if info.boot_state == codes.BOOT_TRIAL:
                c.confirm()
                info = c.hello()
    except EcuError as exc:
        raise AppInstallError(f"the application was not installed: {exc}") from exc
    except ValueError as exc:
        raise AppInstallError(f"the instruction would be refused: {exc}") from exc
    act = info.active
    if act.sha256 != sha or act.state != codes.SLOT_CONFIRMED:
        raise AppInstallError(
            f"the application did not stay: the ECU runs {act.version!r} "
            f"(boot state {info.boot_state}, last error {info.last_error})"
        )
    return {
        "version": version,
        "release_counter": counter,
        "image_len": len(image),
        "sha256": sha.hex(),
        "agent_version": info.agent_version,
        "app_state": info.app.state,
        "seconds": round(time.monotonic() - t0, 3),
    }


def _trial(c: EcuClient, sha: bytes, deadline: float) -> EcuInfo:
    """After the REBOOT: the INFO of the new slot once its application is healthy; the ECU
    rolled it back: AppInstallError with the ECU's reason. (An INFO of the old boot, answered
    before the reset, is polled past.)"""
    while True:
        info = _hello_until(c, deadline)
        if any(s.sha256 == sha and s.state == codes.SLOT_REJECTED for s in info.slots):
            raise AppInstallError(
                f"the application was rolled back on its trial boot (reason {info.last_error}; "
                f"fault {info.app.fault}): the ECU runs {info.active.version!r} again"
            )
        new = info.active.sha256 == sha
        if new and (info.boot_state != codes.BOOT_TRIAL or info.app.state == codes.APP_HEALTHY):
            return info
        if new and info.app.state == codes.APP_FAILED:
            raise AppInstallError(f"the application on trial failed (fault {info.app.fault})")
        if time.monotonic() > deadline:
            raise AppInstallError(
                f"the application never came up healthy within the timeout (boot state "
                f"{info.boot_state}, application state {info.app.state})"
            )
        time.sleep(POLL_S)
