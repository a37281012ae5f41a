"""``otalink device ...``: put the ECU agent on a board, provision its key, ask what it runs.

    otalink device deploy --board NAME --port PORT [--ecu-id ID] [--hardware-id HW]
                          --director-key HEX|FILE ... [--command-key HEX|FILE ...]
                          [--ecu-key FILE] [--keys-dir DIR] [--registry DIR]
                          [--line-port URL] [--no-start] [--no-hello] [--frozen]
                          [--timeout S] [--json]
                          [--app PATH [--app-version V] [--command-seed FILE]]  the application
    otalink device provision --ecu-id ID --hardware-id HW [--board NAME] [--keys-dir DIR]
                             [--registry DIR] [--force] [--json]
    otalink device info --port URL [--baud N] [--timeout S] [--ecu-pub HEX|FILE] [--json]
    otalink device command ACTION --port URL [--command-key FILE] [--wait S] [--json]
                           ACTION: activate | reboot | confirm | revert | abort (signed)
    otalink device bundle OUT FILE... [--entry MOD] [--selftest MOD.FUNC]   an application bundle
    otalink device boards [--json]                      list and validate board profiles
    otalink device unixboard --root DIR [--heapsize 64k] [--baud N] [--background | --stop]
                                                        emulate a board with the unix port

Keys (docs/hil.md "Keys"): a public key is hex or any key file (PEM private or public, the .pub
of ``otalink repo keygen``, a hex seed or public key file, an ECU record); a private key is PEM
or a hex seed. One loader reads them all: ``otalink.host.keys``.

Exit codes: 0 ok, 1 failure, 2 usage/bad profile, 3 refused (MicroPython too old, key clash),
4 unknown board, 5 port/link error (no such port, board busy, no HELLO answer).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Required, TypedDict

from otalink.host.cli import devicekeys, unixboard
from otalink.host.errors import (
    EXIT_OK,
    EXIT_USAGE,
    OtalinkError,
    code_outcome,
    exit_code,
)
from otalink.host.tools.deploy.errors import DeployError, KeyFileError


def register(subparsers: Any) -> None:
    """Add the ``device`` command group."""
    p = subparsers.add_parser("device", help="deploy the ECU agent to a board; provision; info")
    sub = p.add_subparsers(dest="device_command", metavar="ACTION")
    p.set_defaults(func=lambda a: (p.print_help(sys.stderr), EXIT_USAGE)[1])

    d = sub.add_parser("deploy", help="compile, copy and start the agent on a MicroPython board")
    d.add_argument("--board", required=True, help="profile name (boards/<name>) or board.json")
    d.add_argument("--port", required=True, help="the board's REPL serial port")
    d.add_argument("--ecu-id", default=None, help="ECU id (default: <board>-ecu)")
    d.add_argument("--hardware-id", default=None, help="hardware id (default: <board>-devkit)")
    d.add_argument(
        "--director-key",
        action="append",
        default=[],
        metavar="HEX|FILE",
        help="trusted Director instruction key: hex, or any key file (its public key); repeatable",
    )
    d.add_argument(
        "--director-seed",
        action="append",
        default=[],
        metavar="FILE",
        help="a Director private key file (PEM or hex seed): trust its public key; repeatable",
    )
    d.add_argument(
        "--command-key",
        action="append",
        default=[],
        metavar="HEX|FILE",
        help="key trusted for signed commands (ACTIVATE, REBOOT, CONFIRM, REVERT, ABORT): hex, "
        "or any key file; repeatable (default on the unix board: the development command key)",
    )
    d.add_argument(
        "--ecu-key", type=Path, default=None, help="ECU private key file (else the keys dir)"
    )
    _keys_args(d)
    d.add_argument("--line-port", default=None, help="host end of the agent's UART for HELLO")
    d.add_argument("--no-start", action="store_true", help="copy only; do not reset the board")
    d.add_argument(
        "--frozen", action="store_true", help="the firmware has the agent frozen in: no .mpy copy"
    )
    d.add_argument("--no-hello", action="store_true", help="do not check the agent with HELLO")
    d.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the REPL")
    d.add_argument("--hello-timeout", type=float, default=20.0)
    d.add_argument("--json", action="store_true")
    devicekeys.add_app_args(d)
    d.set_defaults(func=_deploy)

    v = sub.add_parser("provision", help="make the ECU key and register it with the Director")
    v.add_argument("--ecu-id", required=True)
    v.add_argument("--hardware-id", required=True)
    v.add_argument("--board", default=None)
    _keys_args(v)
    v.add_argument("--force", action="store_true", help="replace a registered key (rotation)")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=_provision)

    i = sub.add_parser("info", help="HELLO the agent and print its signed INFO")
    i.add_argument("--port", required=True, help="serial URL of the agent's line")
    i.add_argument("--baud", type=int, default=None)
    i.add_argument("--timeout", type=float, default=2.0)
    i.add_argument(
        "--ecu-pub",
        default=None,
        metavar="HEX|FILE",
        help="ECU public key (hex, any key file, or its ecus/<id>.json) to check the signature",
    )
    i.add_argument("--registry", type=Path, default=None, help="check against ecus/<id>.json")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=_info)

    b = sub.add_parser("boards", help="list and validate the board profiles")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=_boards)

    c = sub.add_parser("command", help="send the agent a signed command (reboot, confirm, ...)")
    c.add_argument("action", choices=_ACTIONS)
    c.add_argument("--port", required=True, help="serial URL of the agent's line")
    c.add_argument(
        "--command-key",
        type=Path,
        default=None,
        metavar="FILE",
        help="private key file (PEM or hex seed) the ECU trusts for commands; default: the "
        "development command key",
    )
    c.add_argument("--baud", type=int, default=None)
    c.add_argument("--timeout", type=float, default=2.0, help="reply timeout, seconds")
    c.add_argument(
        "--wait",
        type=float,
        default=0.0,
        help="keep trying this many seconds while the agent does not answer (it may be booting)",
    )
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=_command)

    n = sub.add_parser("bundle", help="make an application bundle (docs/device.md Bundle format)")
    n.add_argument("out", type=Path, help="bundle file to write (e.g. app.otb)")
    n.add_argument("files", type=Path, nargs="+", help=".py/.mpy modules (stored by file name)")
    n.add_argument("--entry", default="app", help="module imported to boot the application")
    n.add_argument(
        "--selftest", default="check.selftest", help="MODULE.FUNCTION run on a trial boot"
    )
    n.set_defaults(func=_bundle)
    unixboard.register(sub)


_ACTIONS = ("activate", "reboot", "confirm", "revert", "abort")


def _keys_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keys-dir", type=Path, default=None, help="ECU seeds (~/.otalink/ecu-keys)")
    p.add_argument("--registry", type=Path, default=None, help="write <registry>/ecus/<id>.json")


def _fail(exc: DeployError, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"ok": False, "error": exc.to_dict()}))
    else:
        print(f"otalink device: error [{exc.code}]: {exc.message}", file=sys.stderr)
    return exc.exit_code


def _deploy(args: argparse.Namespace) -> int:
    from otalink.host.keys import BadKeyError, load_private_key, public_key
    from otalink.host.tools.deploy.deploy import DeployOptions, deploy
    from otalink.host.tools.deploy.profile import load_board
    from otalink.host.tools.deploy.provision import (
        EcuRecord,
        default_keys_dir,
        ecu_key,
        valid_ecu_id,
        write_record,
    )

    try:
        board = load_board(args.board)
        ecu_id = valid_ecu_id(args.ecu_id or f"{board.name}-ecu")
        hw_id = valid_ecu_id(args.hardware_id or f"{board.name}-devkit")
        directors = devicekeys.director_keys(args)
        commands = devicekeys.command_keys(args, board)
        if args.ecu_key is not None:
            try:
                seed, created = load_private_key(args.ecu_key), int(args.ecu_key.stat().st_mtime)
            except (OSError, BadKeyError) as exc:
                raise KeyFileError(f"--ecu-key {args.ecu_key}: {exc}") from exc
        else:
            seed, created = ecu_key(args.keys_dir or default_keys_dir(), ecu_id)
        if args.registry is not None:
            record = EcuRecord(ecu_id, hw_id, public_key(seed), board.name, created)
            write_record(args.registry, record)
        opts = DeployOptions(
            board=board,
            port=args.port,
            ecu_id=ecu_id,
            hw_id=hw_id,
            ecu_seed=seed,
            director_keys=directors,
            command_keys=commands,
            line_port=args.line_port,
            start=not args.no_start,
            hello=not args.no_hello,
            repl_timeout=args.timeout,
            hello_timeout=args.hello_timeout,
            time_floor=created,
            frozen=args.frozen,
            app=args.app,
            app_version=args.app_version,
            app_signer=devicekeys.app_signer(args, board),
        )
        log = (lambda s: None) if args.json else (lambda s: print(s, file=sys.stderr))
        report = deploy(opts, log=log)
    except DeployError as exc:
        return _fail(exc, args.json)
    if args.json:
        print(json.dumps({"ok": True, **report.to_dict()}))
    else:
        print(
            f"deployed to {board.name} on {args.port}: {len(report.written)} file(s) written, "
            f"{len(report.skipped)} unchanged, {report.seconds:.1f} s"
        )
        if report.hello:
            print(f"agent answers HELLO as {report.hello['ecu_id']} / {report.hello['hw_id']}")
        if report.app:
            print(f"application {report.app['version']} installed and confirmed")
    return EXIT_OK


def _provision(args: argparse.Namespace) -> int:
    from otalink.host.tools.deploy.provision import default_keys_dir, provision

    try:
        record = provision(
            args.ecu_id,
            args.hardware_id,
            keys_dir=args.keys_dir or default_keys_dir(),
            registry=args.registry,
            board=args.board,
            force=args.force,
        )
    except DeployError as exc:
        return _fail(exc, args.json)
    if args.json:
        print(json.dumps({"ok": True, **record.to_dict()}))
    else:
        print(f"ECU {record.ecu_id}: ed25519 public key {record.public_key.hex()}")
        if args.registry is not None:
            print(f"registered in {args.registry / 'ecus' / (record.ecu_id + '.json')}")
        print("host agent config (docs/host.md):")
        print(record.agent_toml("PORT-OF-THE-AGENT-UART"))
    return EXIT_OK


def _info(args: argparse.Namespace) -> int:
    from otalink.host.tools.deploy.info import format_info, hello_info
    from otalink.host.tools.deploy.provision import read_record

    try:
        key = None
        if args.ecu_pub:
            key = devicekeys.public_keys([args.ecu_pub], "--ecu-pub")[0]
        info = hello_info(args.port, baud=args.baud, timeout=args.timeout, verify_key=key)
        if args.registry is not None and key is None:
            rec = read_record(args.registry / "ecus" / f"{info['ecu_id']}.json")
            info = hello_info(
                args.port, baud=args.baud, timeout=args.timeout, verify_key=rec.public_key
            )
    except DeployError as exc:
        return _fail(exc, args.json)
    if args.json:
        print(json.dumps({"ok": True, **info}))
    else:
        print(format_info(info))
    return EXIT_OK


class _BoardRow(TypedDict, total=False):
    """One board of ``otalink device boards --json``: a valid profile's figures, or its error."""

    name: Required[str]
    ok: Required[bool]
    error: str
    title: str
    arch: str
    updates: list[str]
    slot_size: int
    heap_budget: int
    baud: int
    max_baud: int


def _boards(args: argparse.Namespace) -> int:
    from otalink.host.tools.deploy.profile import boards_dir, list_boards, load_board

    rows: list[_BoardRow] = []
    code = 0
    for name in list_boards():
        try:
            b = load_board(name)
        except DeployError as exc:
            rows.append({"name": name, "ok": False, "error": exc.message})
            code = exc.exit_code
            continue
        rows.append(
            {
                "name": b.name,
                "ok": True,
                "title": b.title,
                "arch": b.micropython.arch,
                "updates": list(b.updates),
                "slot_size": b.slots.size,
                "heap_budget": b.heap_budget,
                "baud": b.uart.baud,
                "max_baud": b.uart.max_baud,
            }
        )
    if args.json:
        print(json.dumps({"boards_dir": str(boards_dir()), "boards": rows}))
    else:
        for r in rows:
            if r["ok"]:
                print(
                    f"{r['name']:6s} {r['arch']:10s} slot {r['slot_size'] // 1024:4d} KiB  "
                    f"heap {r['heap_budget'] // 1024:3d} KiB  {'+'.join(r['updates']):15s} "
                    f"{r['title']}"
                )
            else:
                print(f"{r['name']:6s} INVALID: {r['error']}")
    return code


def _command(args: argparse.Namespace) -> int:
    from otalink.host.gateway.ecu import DEV_COMMAND_SEED, EcuClient
    from otalink.host.gateway.ecu.errors import EcuError, EcuRejected
    from otalink.host.keys import BadKeyError, load_private_key

    def fail(exc: OtalinkError, message: str) -> int:
        if args.json:
            print(json.dumps({"ok": False, "error": {"code": exc.code, "message": message}}))
        else:
            print(f"otalink device command: error [{exc.code}]: {message}", file=sys.stderr)
        return exit_code(exc)

    try:
        key = load_private_key(args.command_key) if args.command_key else DEV_COMMAND_SEED
    except BadKeyError as exc:
        return fail(exc, f"--command-key {exc}")
    deadline = time.monotonic() + args.wait
    while True:
        try:
            with EcuClient(
                args.port, baud=args.baud, timeout=args.timeout, command_key=key
            ) as client:
                info = client.hello()
                result = getattr(client, args.action)()
            break
        except EcuRejected as exc:
            return fail(exc, f"{args.action} refused by the ECU: {exc}")
        except EcuError as exc:  # no answer (yet): the agent may still be booting
            if time.monotonic() >= deadline:
                return fail(exc, f"no usable answer on {args.port}: {exc}")
            time.sleep(0.2)
    if args.json:
        print(json.dumps({"ok": True, "ecu_id": info.ecu_id, "action": args.action,
                          "result": result}))  # fmt: skip
    else:
        print(f"{info.ecu_id}: {args.action} accepted")
    return EXIT_OK


def _bundle(args: argparse.Namespace) -> int:
    from otalink.host.sim.ecusim.bundle import BundleFormatError, build_bundle

    try:
        modules = {f.name: f.read_bytes() for f in args.files}
        data = build_bundle(modules, args.entry, args.selftest)
        args.out.write_bytes(data)
    except OSError as exc:
        print(f"otalink device bundle: {exc}", file=sys.stderr)
        code = "usage.not_found" if isinstance(exc, FileNotFoundError) else "tool.error"
        return code_outcome(code).exit
    except BundleFormatError as exc:
        print(f"otalink device bundle: error [{exc.code}]: {exc}", file=sys.stderr)
        return exit_code(exc)
    print(f"{args.out}: {len(data)} bytes, {len(modules)} module(s), entry {args.entry}")
    return EXIT_OK
