"""``otalink sim set <VSS path> <value>`` / ``otalink sim get [PATH]``: the signal simulator.

Talks to the running agent's local API (``PUT/GET /api/v1/signals``). Values are given as text
and converted to the signal's VSS type by the agent (``true``/``false``, numbers, ``P`` for the
Park gear, ``wifi|cellular|none`` for the network).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from otalink.host.errors import EXIT_OK, NotFound, exit_code
from otalink.host.gateway.api.client import ApiClient, ApiError, default_api
from pydantic import JsonValue


def _parse_value(text: str) -> Any:
    """JSON scalars as such (``true``, ``42``, ``3.5``), anything else as text."""
    try:
        v = json.loads(text)
    except ValueError:
        return text
    return v if isinstance(v, bool | int | float | str) else text


def _print(args: argparse.Namespace, signals: dict[str, JsonValue], only: str | None) -> None:
    rows = {k: v for k, v in signals.items() if only is None or k == only}
    if args.json:
        print(json.dumps(rows, indent=2, sort_keys=True))
        return
    width = max((len(k) for k in rows), default=10)
    for path, s in sorted(rows.items()):
        value = s.get("value") if isinstance(s, dict) else s
        flag = ""
        if isinstance(s, dict) and s.get("stale"):
            flag = "  (missing)" if value is None else "  (stale)"
        print(f"{path:<{width}}  {json.dumps(value)}{flag}")


def cmd_set(args: argparse.Namespace) -> int:
    body = {"signals": {args.path: _parse_value(args.value)}}
    with ApiClient(args.api) as client:
        data = client.put("/signals", body)
    _print(args, data.get("signals", {}), args.path)
    return EXIT_OK


def cmd_get(args: argparse.Namespace) -> int:
    with ApiClient(args.api) as client:
        data = client.get("/signals")
    signals = data.get("signals", {})
    if args.path and args.path not in signals:
        missing = NotFound("vehicle.unknown_signal", f"unknown signal {args.path}")
        print(f"otalink sim: {missing.detail}", file=sys.stderr)
        return exit_code(missing)
    _print(args, signals, args.path)
    return EXIT_OK


def _run(fn: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(fn(args))
        except ApiError as exc:
            if args.json:
                print(json.dumps(exc.problem), file=sys.stderr)
            else:
                print(f"otalink sim: {exc.code}: {exc}", file=sys.stderr)
            return exc.exit_code

    return run


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("sim", help="vehicle signal simulator (VSS paths)")
    sub = p.add_subparsers(dest="sim_command", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api", default=None, help=f"agent API base URL (default {default_api()})")
    common.add_argument("--json", action="store_true", help="JSON output")
    s = sub.add_parser("set", parents=[common], help="set a signal: sim set PATH VALUE")
    s.add_argument("path", help="VSS path, e.g. Vehicle.Powertrain.Transmission.SelectedGear")
    s.add_argument("value", help="new value (true/false, number, P, wifi|cellular|none)")
    s.set_defaults(func=_run(cmd_set))
    g = sub.add_parser("get", parents=[common], help="show signals (all, or one PATH)")
    g.add_argument("path", nargs="?", default=None)
    g.set_defaults(func=_run(cmd_get))
