"""``otalink device ...``: put the ECU agent on a board, provision its key, ask what it runs.

    otalink device deploy --board NAME --port PORT [--ecu-id ID] [--hardware-id HW]
                          [--director-key HEX|FILE ...] [--director-seed FILE ...]
                          [--ecu-key SEEDFILE] [--keys-dir DIR] [--registry DIR]
                          [--line-port URL] [--no-start] [--no-hello] [--frozen]
                          [--timeout S] [--json]
    otalink device provision --ecu-id ID --hardware-id HW [--board NAME] [--keys-dir DIR]
                             [--registry DIR] [--force] [--json]
    otalink device info --port URL [--baud N] [--timeout S] [--ecu-pub HEX] [--json]
    otalink device boards [--json]                      list and validate board profiles
    otalink device unixboard --root DIR [--heapsize 64k] emulate a board with the unix port

Exit codes: 0 ok, 1 failure, 2 usage/bad profile, 3 refused (MicroPython too old, key clash),
4 unknown board, 5 port/link error (no such port, board busy, no HELLO answer).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from otalink.host.deploy.errors import DeployError, KeyFileError


def register(subparsers: Any) -> None:
    """Add the ``device`` command group."""
    p = subparsers.add_parser("device", help="deploy the ECU agent to a board; provision; info")
    sub = p.add_subparsers(dest="device_command", metavar="ACTION")
    p.set_defaults(func=lambda a: (p.print_help(sys.stderr), 2)[1])

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
        help="trusted Director public key (hex, or a file holding it); repeatable",
    )
    d.add_argument(
        "--director-seed",
        action="append",
        default=[],
        metavar="FILE",
        help="development Director key seed file: trust its public key; repeatable",
    )
    d.add_argument("--ecu-key", type=Path, default=None, help="ECU seed file (else keys dir)")
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
    i.add_argument("--ecu-pub", default=None, help="ECU public key (hex) to check the signature")
    i.add_argument("--registry", type=Path, default=None, help="check against ecus/<id>.json")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=_info)

    b = sub.add_parser("boards", help="list and validate the board profiles")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=_boards)

    u = sub.add_parser("unixboard", help="run the unix port as an emulated board (until Ctrl-C)")
    u.add_argument("--root", type=Path, required=True, help="the board's flash filesystem")
    u.add_argument("--heapsize", default=None, help="micropython -X heapsize (e.g. 64k)")
    u.add_argument("--baud", type=int, default=None, help="pace the board's UART (default off)")
    u.set_defaults(func=_unixboard)


def _keys_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keys-dir", type=Path, default=None, help="ECU seeds (~/.otalink/ecu-keys)")
    p.add_argument("--registry", type=Path, default=None, help="write <registry>/ecus/<id>.json")


def _fail(exc: DeployError, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"ok": False, "error": exc.to_dict()}))
    else:
        print(f"otalink device: error [{exc.code}]: {exc.message}", file=sys.stderr)
    return exc.exit_code


def _director_keys(args: argparse.Namespace) -> list[bytes]:
    from otalink.host.keys import BadKeyError, from_hex, load_seed, public_key

    keys: list[bytes] = []
    for item in args.director_key:
        path = Path(item)
        text = path.read_text() if path.is_file() else item
        try:
            keys.append(from_hex(text, 32))
        except BadKeyError as exc:
            raise KeyFileError(f"--director-key {item}: {exc}") from exc
    for item in args.director_seed:
        try:
            keys.append(public_key(load_seed(Path(item))))
        except (OSError, BadKeyError) as exc:
            raise KeyFileError(f"--director-seed {item}: {exc}") from exc
    if len(set(keys)) != len(keys):
        raise KeyFileError("the same Director key was given twice")
    if not keys:
        raise KeyFileError("the agent needs a Director key: --director-key or --director-seed")
    if len(keys) > 8:
        raise KeyFileError("at most 8 Director keys")
    return keys


def _deploy(args: argparse.Namespace) -> int:
    from otalink.host.deploy.deploy import DeployOptions, deploy
    from otalink.host.deploy.profile import load_board
    from otalink.host.deploy.provision import (
        EcuRecord,
        default_keys_dir,
        ecu_key,
        valid_ecu_id,
        write_record,
    )
    from otalink.host.keys import BadKeyError, load_seed, public_key

    try:
        board = load_board(args.board)
        ecu_id = valid_ecu_id(args.ecu_id or f"{board.name}-ecu")
        hw_id = valid_ecu_id(args.hardware_id or f"{board.name}-devkit")
        directors = _director_keys(args)
        if args.ecu_key is not None:
            try:
                seed, created = load_seed(args.ecu_key), int(args.ecu_key.stat().st_mtime)
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
            line_port=args.line_port,
            start=not args.no_start,
            hello=not args.no_hello,
            repl_timeout=args.timeout,
            hello_timeout=args.hello_timeout,
            time_floor=created,
            frozen=args.frozen,
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
    return 0


def _provision(args: argparse.Namespace) -> int:
    from otalink.host.deploy.provision import default_keys_dir, provision

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
    return 0


def _info(args: argparse.Namespace) -> int:
    from otalink.host.deploy.info import format_info, hello_info
    from otalink.host.deploy.provision import read_record
    from otalink.host.keys import BadKeyError, from_hex

    try:
        key = None
        if args.ecu_pub:
            try:
                key = from_hex(args.ecu_pub, 32)
            except BadKeyError as exc:
                raise KeyFileError(f"--ecu-pub: {exc}") from exc
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
    return 0


def _boards(args: argparse.Namespace) -> int:
    from otalink.host.deploy.profile import boards_dir, list_boards, load_board

    rows: list[dict[str, Any]] = []
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


def _unixboard(args: argparse.Namespace) -> int:
    from otalink.host.deploy.unixboard import UnixBoard

    def _stop(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)  # power off cleanly: no orphaned micropython
    with UnixBoard(args.root, heapsize=args.heapsize, line_baud=args.baud) as board:
        print(f"REPL port (deploy --port): {board.port}")
        print(f"agent line, host end (info --port): {board.uart_host}")
        print(f"filesystem root: {args.root}   (Ctrl-C to power off)", flush=True)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0
