"""``otalink device deploy``: put the ECU agent on a MicroPython board and prove it answers.

Public interface (stable):
    DeployOptions(board: Board, port: str, ecu_id: str, hw_id: str, ecu_seed: bytes,
                  director_keys: list[bytes], line_port: str | None = None,
                  start: bool = True, hello: bool = True, repl_timeout: float = 5.0,
                  hello_timeout: float = 20.0, time_floor: int = 0, frozen: bool = False,
                  mpy_tree: Path | None = None, command_keys: list[bytes] | None = None,
                  app: Path | None = None, app_version: str = "1.0.0",
                  app_signer: AppSigner | None = None)
        app: the ECU's application (a .py file or a folder with app.py), installed after the
        agent answers, over its line as a signed update (``app.py``: install_app) with
        ``app_signer``'s Director and command keys
        command_keys: public keys the ECU trusts for signed commands (ACTIVATE, REBOOT,
        CONFIRM, REVERT, ABORT), written to the ECU config's "command_keys"; None = the board's
        default (the development command key on the unix port, none elsewhere)
    default_command_keys(board: Board) -> list[bytes]
    deploy(opts, log: Callable[[str], None] = ...) -> DeployReport
    DeployReport: .to_dict() -> {"board", "port", "micropython", "mpy", "written", "skipped",
                  "removed", "started", "hello": {...} | None, "app": {...} | None, "seconds"}
    check_compat(board: Board, mpy_word: int | None, version: tuple[int, ...],
                 headers: Iterable[tuple[int, int, int]]) -> None    (MpyMismatchError)
    ecu_config(opts, wiring) -> dict    the ECU config JSON written to the board (otalink.json)
    boot_glue_path() -> Path            boards/main.py, copied to the board as main.py

Steps: open the REPL (mpremote) -> probe MicroPython version, .mpy ABI and file hashes -> refuse
an incompatible board -> compile with mpy-cross for the board's arch -> write only what changed
(sha256 on the board vs here; temp + rename) and remove stale agent files -> write board.json,
otalink.json (ECU id, hardware id, line, command keys), the key files the profile names (ECU
seed, Director public keys) and main.py (last) -> soft-reset the board so main.py starts the
agent -> HELLO over the agent's line (EcuClient) and check the signed INFO -> with ``app``: the
application beside the agent in a format-2 image, installed as a signed update and confirmed once
it reports healthy (docs/deploy.md "The application").
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from otalink.host.tools.bundle import agent_files
from otalink.host.tools.deploy.app import AppInstall, AppSigner, app_image, app_modules, install_app
from otalink.host.tools.deploy.compile import (
    MPY_CROSS_VERSION,
    collect_tree,
    compile_tree,
    mpy_header,
)
from otalink.host.tools.deploy.errors import (
    BoardExecError,
    DeployError,
    HelloError,
    MpyMismatchError,
)
from otalink.host.tools.deploy.probe import BoardProbe, probe_code
from otalink.host.tools.deploy.profile import MPY_ARCHES, Board, boards_dir
from otalink.host.tools.deploy.repl import BoardRepl

if TYPE_CHECKING:  # the ECU client is imported when a HELLO is made
    from otalink.host.tools.deploy.info import HelloInfo

BOOT_GLUE_NAME = "main.py"
PROFILE_NAME = "board.json"
WIRING_NAME = "board_wiring.json"  # written by the unix-port board emulator only


def boot_glue_path() -> Path:
    return boards_dir() / "main.py"


@dataclass
class DeployOptions:
    board: Board
    port: str
    ecu_id: str
    hw_id: str
    ecu_seed: bytes
    director_keys: list[bytes]
    line_port: str | None = None
    start: bool = True
    hello: bool = True
    repl_timeout: float = 5.0
    hello_timeout: float = 20.0
    time_floor: int = 0
    frozen: bool = False  # the firmware has the agent frozen in (boards/manifest.py): no .mpy copy
    mpy_tree: Path | None = None  # a staging tree compiled before (else compile for the arch)
    command_keys: list[bytes] | None = None  # trusted for signed commands; None: board default
    app: Path | None = None  # the ECU's application, installed as a signed update after HELLO
    app_version: str = "1.0.0"
    app_signer: AppSigner | None = None  # signs the application's install (Director + command)


def default_command_keys(board: Board) -> list[bytes]:
    """Command keys an ECU trusts when none are given: the development command key on the
    unix port (an emulated bench board), none on real boards (say which with --command-key)."""
    if board.port != "unix":
        return []
    from otalink.host.gateway.ecu.commands import dev_command_key

    return [dev_command_key().public]


def command_keys(opts: DeployOptions) -> list[bytes]:
    """The command keys deploy writes for ``opts`` (the board's default when not given)."""
    keys = default_command_keys(opts.board) if opts.command_keys is None else opts.command_keys
    if len(set(keys)) != len(keys) or len(keys) > 8 or any(len(k) != 32 for k in keys):
        raise DeployError("command keys: at most 8 distinct 32-byte ed25519 public keys")
    return list(keys)


class DeployReportDoc(TypedDict):
    """``DeployReport.to_dict()`` (what ``otalink device deploy --json`` prints)."""

    board: str
    port: str
    micropython: str
    mpy: int | None
    written: list[str]
    skipped: list[str]
    removed: list[str]
    started: bool
    hello: HelloInfo | None
    app: AppInstall | None
    seconds: float


@dataclass
class DeployReport:
    board: str
    port: str
    micropython: str = ""
    mpy: int | None = None
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    started: bool = False
    hello: HelloInfo | None = None
    app: AppInstall | None = None
    seconds: float = 0.0

    def to_dict(self) -> DeployReportDoc:
        return {
            "board": self.board,
            "port": self.port,
            "micropython": self.micropython,
            "mpy": self.mpy,
            "written": self.written,
            "skipped": self.skipped,
            "removed": self.removed,
            "started": self.started,
            "hello": self.hello,
            "app": self.app,
            "seconds": round(self.seconds, 3),
        }


# Runs on the board: versions, ABI word and sha256 of every file deploy manages.
def check_compat(
    board: Board,
    mpy_word: int | None,
    version: tuple[int, ...],
    headers: Iterable[tuple[int, int, int]] = (),
) -> None:
    """Refuse a board whose MicroPython cannot run this agent (MpyMismatchError)."""
    need = board.min_version
    have = ".".join(str(x) for x in version)
    if mpy_word is None:
        raise MpyMismatchError(
            f"MicroPython {have} is too old: no sys.implementation._mpy; "
            f"board {board.name} needs >= {board.micropython.min_version}"
        )
    ver, sub, arch = mpy_word & 0xFF, (mpy_word >> 8) & 3, mpy_word >> 10
    if ver != MPY_CROSS_VERSION:
        raise MpyMismatchError(
            f"board runs MicroPython {have} with .mpy v{ver}; this agent is compiled to "
            f".mpy v{MPY_CROSS_VERSION} (MicroPython 1.19+): "
            + ("upgrade the board's firmware" if ver < MPY_CROSS_VERSION else "upgrade mpy-cross")
        )
    if tuple(version[:3]) < need:
        raise MpyMismatchError(
            f"MicroPython {have} is too old for board profile {board.name} "
            f"(needs >= {board.micropython.min_version}): upgrade the board's firmware"
        )
    want_arch = MPY_ARCHES[board.micropython.arch]
    if arch != want_arch:
        names = {v: k for k, v in MPY_ARCHES.items()}
        raise MpyMismatchError(
            f"board reports native arch {names.get(arch, arch)!r} but profile {board.name} is "
            f"{board.micropython.arch!r}: wrong --board for this port?"
        )
    for fver, fsub, farch in headers:
        if fver != ver or (farch and (farch != arch or fsub != sub)):
            raise MpyMismatchError(
                f"compiled .mpy v{fver}.{fsub} arch {farch} cannot load on v{ver}.{sub} arch {arch}"
            )


def ecu_config(opts: DeployOptions, wiring: dict[str, str] | None) -> dict[str, Any]:
    """The ECU config JSON for the board (schema: docs/device.md "ECU configuration")."""
    # The keys are not in here: they go to the files the profile's "keys" section names.
    cfg: dict[str, Any] = {
        "ecu_id": opts.ecu_id,
        "hw_id": opts.hw_id,
        "board_path": PROFILE_NAME,
        "director_threshold": 1,
        "time_floor": opts.time_floor,
    }
    keys = command_keys(opts)
    if keys:
        cfg["command_keys"] = [k.hex() for k in keys]
    if opts.board.port == "unix" and wiring:
        cfg["line"] = {"path": wiring["uart_device"]}
    return cfg


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode()


def deploy(opts: DeployOptions, log: Callable[[str], None] = lambda s: None) -> DeployReport:
    """Deploy the agent to the board on ``opts.port``; see the module docstring for the steps."""
    t0 = time.monotonic()
    board = opts.board
    report = DeployReport(board=board.name, port=opts.port)
    if not opts.director_keys:
        raise DeployError("at least one Director public key (--director-key) is required")
    command_keys(opts)  # refuse bad command keys before touching the board
    app = app_modules(opts.app) if opts.app is not None else None
    if app is not None and (opts.app_signer is None or not (opts.start and opts.hello)):
        raise DeployError(
            "--app installs the application as a signed update once the agent answers: it "
            "needs a Director private key (--director-seed) and the agent started and checked "
            "(no --no-start / --no-hello)"
        )
    lib = board.deploy.lib_dir
    managed = [
        BOOT_GLUE_NAME,
        PROFILE_NAME,
        board.deploy.config,
        board.keys.ecu_key,
        board.keys.director_keys,
    ]
    repl = BoardRepl.open(
        opts.port,
        baud=board.deploy.repl_baud,
        soft_reset=board.deploy.soft_reset,
        timeout=opts.repl_timeout,
    )
    try:
        probe = repl.eval_probe(probe_code(lib, managed, WIRING_NAME), BoardProbe)
        version = probe.version
        report.micropython = ".".join(str(x) for x in version)
        report.mpy = probe.mpy
        log(f"board: MicroPython {report.micropython} ({probe.platform}), mpy {report.mpy}")
        check_compat(board, report.mpy, version)
        wiring = probe.wiring_doc()
        line_port = opts.line_port or (wiring or {}).get("uart_host")
        if opts.start and opts.hello and not line_port:
            raise HelloError(
                "no --line-port (host end of the agent's UART): cannot check the agent with "
                "HELLO (or pass --no-hello)"
            )
        if opts.frozen:
            try:
                repl.exec("import otalink.device.config")
            except BoardExecError as exc:
                raise DeployError(
                    "--frozen: this firmware has no frozen otalink agent (boards/manifest.py)"
                ) from exc
            files: dict[str, bytes] = {}
        else:
            if opts.mpy_tree is not None:
                files = collect_tree(opts.mpy_tree)
            else:
                files = compile_tree(board.micropython.arch)
            check_compat(board, report.mpy, version, (mpy_header(b) for b in files.values()))
        wanted: dict[str, bytes] = {f"{lib}/{rel}": data for rel, data in files.items()}
        wanted[PROFILE_NAME] = _json_bytes(board.raw)
        wanted[board.deploy.config] = _json_bytes(ecu_config(opts, wiring))
        wanted[board.keys.ecu_key] = opts.ecu_seed
        wanted[board.keys.director_keys] = b"".join(opts.director_keys)
        wanted[BOOT_GLUE_NAME] = boot_glue_path().read_bytes()
        have = probe.files
        changed = [p for p, data in wanted.items() if have.get(p) != _sha(data)]
        for d in sorted({p.rsplit("/", 1)[0] for p in changed if "/" in p}):
            repl.mkdirs(d)
        for path, data in wanted.items():
            if path not in changed:
                report.skipped.append(path)
                continue
            repl.write_file(path, data)
            report.written.append(path)
            log(f"wrote {path} ({len(data)} bytes)")
        for path in sorted(have):
            if path.startswith(f"{lib}/otalink/") and path not in wanted:
                repl.remove(path)
                report.removed.append(path)
        log(f"{len(report.written)} written, {len(report.skipped)} unchanged")
        if opts.start:
            # Keep the REPL port open: if the agent fails to start, its traceback is there.
            # Same keys on the unix port: Ctrl-D ends its REPL process, and the emulated board
            # boots again (docs/hil.md).
            repl.reboot_to_main()
            report.started = True
            log("agent started (board reset)")
        if opts.start and opts.hello and line_port:
            from otalink.host.keys import public_key

            try:
                info = hello_check(
                    line_port, board.uart.baud, opts.hello_timeout, public_key(opts.ecu_seed)
                )
                _check_identity(info, opts)
            except HelloError as exc:
                tail = _tail(repl.output())
                if tail:
                    exc.message += "\nboard output:\n" + tail
                    exc.args = (exc.message,)
                raise
            report.hello = info
            log(f"HELLO ok: {info['ecu_id']} / {info['hw_id']} on {line_port}")
            if app is not None and opts.app_signer is not None:
                image = app_image(app, {} if opts.frozen else agent_files(files))
                log(f"installing the application ({len(image)} bytes image) as {opts.app_version}")
                report.app = install_app(
                    line_port, board.uart.baud, image, ecu_id=opts.ecu_id, hw_id=opts.hw_id,
                    verify_key=public_key(opts.ecu_seed), signer=opts.app_signer,
                    version=opts.app_version,
                )  # fmt: skip
                log(f"application {opts.app_version} confirmed ({report.app['seconds']} s)")
    finally:
        repl.close()
    report.seconds = time.monotonic() - t0
    return report


def _tail(text: str, lines: int = 12) -> str:
    # Drop raw-REPL control bytes; keep the last lines (a traceback, a MemoryError...).
    clean = "".join(c for c in text if c in "\n\t" or c >= " ")
    return "\n".join(clean.strip().splitlines()[-lines:])


def _check_identity(info: HelloInfo, opts: DeployOptions) -> None:
    if info.get("ecu_id") != opts.ecu_id or info.get("hw_id") != opts.hw_id:
        raise HelloError(
            f"agent answered as {info.get('ecu_id')}/{info.get('hw_id')}, "
            f"expected {opts.ecu_id}/{opts.hw_id}"
        )


def hello_check(
    url: str, baud: int | None, timeout: float, verify_key: bytes | None = None
) -> HelloInfo:
    """HELLO the agent on ``url`` until it answers (it may still be booting) -> INFO as dict."""
    from otalink.host.tools.deploy.info import hello_info

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            return hello_info(url, baud=baud, timeout=1.0, verify_key=verify_key)
        except HelloError as exc:
            if "not signed" in exc.message:
                raise
            last = exc
            time.sleep(0.2)
    raise HelloError(f"agent did not answer HELLO on {url} within {timeout:g} s: {last}")


__all__ = [
    "BoardExecError",
    "DeployOptions",
    "DeployReport",
    "check_compat",
    "command_keys",
    "default_command_keys",
    "deploy",
    "ecu_config",
]
