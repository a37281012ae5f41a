"""The driver's commands: ``otalink status|check|show|download|...`` over the local API.

Every command talks to the running agent (``--api URL``, default ``$OTALINK_API`` or
http://127.0.0.1:8765) through ``ApiClient`` and accepts ``--json`` (machine output: the API's
JSON, one document, or JSON lines for streams; errors as the problem+json object).

Exit codes (docs/ui.md): 0 ok; 1 failure (the install ended failed_rolled_back or
failed_needs_service, unexpected agent error); 2 usage (bad time, invalid request); 3 refused
(preconditions not met, confirmation missing, wrong state, past the point of no return; also
``preconditions`` when any item fails); 4 not found (no update available); 5 agent unreachable.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from otalink.host.cli.apiclient import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    ApiClient,
    ApiError,
    default_api,
)

TERMINAL = ("idle", "succeeded", "failed_rolled_back", "failed_needs_service")
FAILED = ("failed_rolled_back", "failed_needs_service")
BAR_WIDTH = 30
Handler = Callable[[argparse.Namespace, ApiClient], int]


# ---- output helpers -------------------------------------------------------------------------


def _out(args: argparse.Namespace, data: Any, text: str | None = None) -> None:
    if args.json:
        print(json.dumps(data, ensure_ascii=False, default=str))
    elif text is not None:
        print(text)


def _mb(n: Any) -> str:
    """Bytes as MB, or kB below one megabyte."""
    b = float(n or 0)
    return f"{b / 1e6:.1f} MB" if b >= 1e6 else f"{b / 1e3:.1f} kB"


def _dur(s: Any) -> str:
    if not isinstance(s, int | float):
        return "?"
    s = max(0, round(s))
    return f"{s} s" if s < 60 else f"{s // 60} min {s % 60:02d} s"


def bar(percent: float, width: int = BAR_WIDTH) -> str:
    """``[########--------]`` for a percentage."""
    p = max(0.0, min(100.0, percent))
    full = round(width * p / 100)
    return "[" + "#" * full + "-" * (width - full) + f"] {p:5.1f} %"


def _download_line(st: dict[str, Any]) -> str:
    d = st.get("download") or {}
    total = d.get("total") or 0
    done = d.get("bytes") or 0
    p = 100.0 * done / total if total else 0.0
    rate = d.get("rate")
    rate_s = f"  {_mb(rate)}/s" if isinstance(rate, int | float) and rate else ""
    eta = d.get("eta_s")
    eta_s = f"  ETA {_dur(eta)}" if isinstance(eta, int | float) else ""
    return f"download {bar(p)}  {_mb(done)} / {_mb(total)}{rate_s}{eta_s}"


def _install_lines(st: dict[str, Any]) -> list[str]:
    ins = st.get("install") or {}
    lines = [f"install  {bar(float(ins.get('overall_percent') or 0))}"]
    ecus = ins.get("ecus") or {}
    for ecu_id in sorted(ecus):
        e = ecus[ecu_id] or {}
        lines.append(
            f"  {ecu_id:<10} {bar(float(e.get('percent') or 0), 20)}  {e.get('phase') or ''}"
        )
    if ins.get("point_of_no_return"):
        lines.append("  past the point of no return: the install can no longer be stopped")
    return lines


def status_text(st: dict[str, Any]) -> str:
    """Human summary of a status document."""
    state = st.get("state", "?")
    reason = st.get("reason")
    lines = [f"state: {state}" + (f" ({reason})" if reason else "")]
    upd = st.get("update") or {}
    if upd:
        lines.append(f"update: {upd.get('title') or ''} {upd.get('version') or ''}".rstrip())
    if state in ("downloading", "download_paused"):
        lines.append(_download_line(st))
    installing = ("installing", "installing_committed", "restarting", "verifying")
    if state in installing or (
        state in (*FAILED, "succeeded") and (st.get("install") or {}).get("ecus")
    ):
        lines.extend(_install_lines(st))
    sched = st.get("schedule") or {}
    if isinstance(sched, dict) and sched.get("at"):
        lines.append(f"scheduled: {sched['at']}")
    if st.get("network") is not None:
        lines.append(
            f"network: {st['network']}"
            + ("  (cellular allowed)" if st.get("cellular_allowed") else "")
        )
    return "\n".join(lines)


class _Progress:
    """Redraws progress lines in place on a terminal; prints changes otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self._lines = 0
        self._last = ""

    def show(self, text: str) -> None:
        if text == self._last:
            return
        self._last = text
        if self.tty:
            if self._lines:
                sys.stdout.write(f"\x1b[{self._lines}F\x1b[J")
            sys.stdout.write(text + "\n")
            self._lines = text.count("\n") + 1
        else:
            sys.stdout.write(text + "\n")
        sys.stdout.flush()


def _watch(
    args: argparse.Namespace,
    client: ApiClient,
    done: Callable[[dict[str, Any]], bool],
    timeout: float | None = None,
) -> dict[str, Any]:
    """Show status until ``done(status)``; returns the last status."""
    prog = _Progress()
    last_json = ""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        st = client.get("/status")
        if args.json:
            doc = json.dumps(st, ensure_ascii=False, default=str)
            if doc != last_json:
                print(doc, flush=True)
                last_json = doc
        else:
            prog.show(status_text(st))
        if done(st) or (deadline is not None and time.monotonic() > deadline):
            return dict(st)
        time.sleep(0.25)


# ---- time parsing ---------------------------------------------------------------------------

_REL = re.compile(r"^\+(\d{1,6})([smh])$")
_HHMM = re.compile(r"^(\d{1,2}):(\d{2})$")


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """``02:00`` (next occurrence, local), ``+30m``/``+2h``/``+45s``, or ISO 8601."""
    now = (now or datetime.now()).astimezone()
    text = text.strip()
    m = _REL.match(text)
    if m:
        n = int(m.group(1))
        unit = {"s": 1, "m": 60, "h": 3600}[m.group(2)]
        return now + timedelta(seconds=n * unit)
    m = _HHMM.match(text)
    if m:
        hh, mm = int(m.group(1)), int(m.group(2))
        if hh > 23 or mm > 59:
            raise ValueError(f"not a time of day: {text}")
        at = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
        return at if at > now else at + timedelta(days=1)
    at = datetime.fromisoformat(text)
    return at.astimezone() if at.tzinfo is None else at


# ---- commands ---------------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace, client: ApiClient) -> int:
    if args.watch:
        st = _watch(args, client, lambda s: s.get("state") in TERMINAL, args.timeout)
        return EXIT_FAILURE if st.get("state") in FAILED else EXIT_OK
    st = client.get("/status")
    _out(args, st, status_text(st))
    return EXIT_OK


def cmd_check(args: argparse.Namespace, client: ApiClient) -> int:
    st = client.post("/check")
    _out(args, st, status_text(st))
    return EXIT_OK


def cmd_show(args: argparse.Namespace, client: ApiClient) -> int:
    d = client.get("/update")
    lines = [
        f"{d.get('title') or 'Software update'} {d.get('version') or ''}".rstrip(),
        f"download size: {_mb(d.get('download_size'))}",
        f"installation takes about {_dur(d.get('est_install_s'))}",
    ]
    if d.get("unavailable_functions"):
        lines.append("unavailable while installing: " + ", ".join(d["unavailable_functions"]))
    pol = d.get("network_policy")
    if isinstance(pol, dict):
        cell = "allowed" if pol.get("cellular_allowed") else "only with your permission"
        lines.append(f"network: {pol.get('network')} (cellular: {cell})")
    elif pol:
        lines.append(f"network policy: {pol}")
    for e in d.get("ecus") or []:
        if isinstance(e, dict):
            lines.append(
                "  ecu "
                + " ".join(f"{k}={v}" for k, v in e.items() if isinstance(v, str | int | float))
            )
    if d.get("release_notes"):
        lines += ["", "What's new:", str(d["release_notes"])]
    _out(args, d, "\n".join(lines))
    return EXIT_OK


def _download_done(st: dict[str, Any]) -> bool:
    return st.get("state") not in ("downloading",)


def cmd_download(args: argparse.Namespace, client: ApiClient) -> int:
    st = client.post("/download")
    if args.wait:
        st = _watch(args, client, _download_done, args.timeout)
        return EXIT_OK if st.get("state") not in ("download_paused", *FAILED) else EXIT_REFUSED
    _out(args, st, status_text(st))
    return EXIT_OK


def _simple(path: str, method: str = "POST") -> Handler:
    def handler(args: argparse.Namespace, client: ApiClient) -> int:
        st = client.call(method, path)
        _out(args, st, status_text(st))
        return EXIT_OK

    return handler


def cmd_cancel(args: argparse.Namespace, client: ApiClient) -> int:
    state = client.get("/status").get("state")
    path = "/download/cancel" if state in ("downloading", "download_paused") else "/cancel"
    st = client.post(path)
    _out(args, st, status_text(st))
    return EXIT_OK


def cmd_allow_cellular(args: argparse.Namespace, client: ApiClient) -> int:
    st = client.put("/network/cellular", {"allowed": not args.no})
    _out(args, st, status_text(st))
    return EXIT_OK


def preconditions_text(items: list[dict[str, Any]]) -> str:
    lines = []
    for p in items:
        mark = "ok " if p.get("ok") else "NOT"
        line = f"[{mark}] {p.get('id')}: {p.get('value')!s} (needs {p.get('required')!s})"
        if not p.get("ok") and p.get("hint"):
            line += f" -> {p['hint']}"
        lines.append(line)
    return "\n".join(lines) if lines else "(no preconditions reported)"


def cmd_preconditions(args: argparse.Namespace, client: ApiClient) -> int:
    items = client.get("/preconditions")
    _out(args, items, preconditions_text(items))
    return EXIT_OK if all(p.get("ok") for p in items) else EXIT_REFUSED


def _confirm(args: argparse.Namespace, client: ApiClient) -> bool:
    if args.yes:
        return True
    if not sys.stdin.isatty():
        return False
    try:
        d = client.get("/update")
        est = _dur(d.get("est_install_s"))
        off = ", ".join(d.get("unavailable_functions") or []) or "driving"
    except ApiError:
        est, off = "?", "driving"
    answer = input(f"Install now? It takes about {est}; unavailable meanwhile: {off}. [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def cmd_install(args: argparse.Namespace, client: ApiClient) -> int:
    if args.at:
        return _schedule(args, client, args.at)
    if not _confirm(args, client):
        problem = {
            "code": "confirmation_required",
            "detail": "the installation needs the driver's confirmation (--yes)",
        }
        _err(args, problem)
        return EXIT_REFUSED
    st = client.post("/install", {"confirm": True})
    if args.no_wait:
        _out(args, st, status_text(st))
        return EXIT_OK
    st = _watch(args, client, lambda s: s.get("state") not in _INSTALLING, args.timeout)
    if not args.json:
        print(f"result: {st.get('state')}" + (f" ({st['reason']})" if st.get("reason") else ""))
    if st.get("state") in FAILED:
        return EXIT_FAILURE
    return EXIT_OK if st.get("state") == "succeeded" else EXIT_REFUSED


_INSTALLING = (
    "installing",
    "installing_committed",
    "restarting",
    "verifying",
    "awaiting_confirmation",
)


def _schedule(args: argparse.Namespace, client: ApiClient, text: str) -> int:
    try:
        at = parse_time(text)
    except ValueError as exc:
        _err(args, {"code": "invalid_time", "detail": str(exc)})
        return EXIT_USAGE
    st = client.put("/schedule", {"at": at.isoformat()})
    _out(args, st, status_text(st))
    return EXIT_OK


def cmd_schedule(args: argparse.Namespace, client: ApiClient) -> int:
    return _schedule(args, client, args.time)


def cmd_history(args: argparse.Namespace, client: ApiClient) -> int:
    items = client.get("/history")
    lines = []
    for h in items:
        if isinstance(h, dict):
            lines.append("  ".join(f"{k}={v}" for k, v in h.items() if not isinstance(v, dict)))
    _out(args, items, "\n".join(lines) if lines else "(no campaigns yet)")
    return EXIT_OK


def cmd_ecus(args: argparse.Namespace, client: ApiClient) -> int:
    # --refresh asks every ECU for a fresh signed report first (link health and versions are
    # otherwise what the agent last heard; before the first answer a link is not ok).
    items = client.post("/ecus/refresh") if args.refresh else client.get("/ecus")
    lines = []
    for e in items:
        if isinstance(e, dict):
            link = e.get("link")
            parts = [f"{k}={v}" for k, v in e.items() if not isinstance(v, dict | list)]
            if isinstance(link, dict):
                parts.append("link: " + " ".join(f"{k}={v}" for k, v in link.items()))
            lines.append("  ".join(parts))
    _out(args, items, "\n".join(lines) if lines else "(no ECUs configured)")
    return EXIT_OK


def cmd_events(args: argparse.Namespace, client: ApiClient) -> int:
    for count, ev in enumerate(client.events(since=args.since, follow=args.follow), 1):
        print(json.dumps(ev, ensure_ascii=False, default=str), flush=True)
        if args.limit and count >= args.limit:
            break
    return EXIT_OK


# ---- wiring -------------------------------------------------------------------------------------


def _err(args: argparse.Namespace, problem: dict[str, Any]) -> None:
    if getattr(args, "json", False):
        print(json.dumps(problem, ensure_ascii=False, default=str))
    else:
        print(f"otalink: {problem.get('detail') or problem.get('code')}", file=sys.stderr)
        failing = problem.get("failing")
        if isinstance(failing, list) and failing:
            print(preconditions_text([p for p in failing if isinstance(p, dict)]), file=sys.stderr)


def _run(handler: Handler) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            with ApiClient(args.api) as client:
                return handler(args, client)
        except ApiError as exc:
            _err(args, exc.problem)
            return exc.exit_code

    return run


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--api", default=None, help=f"agent API base URL (default {default_api()})")
    p.add_argument("--json", action="store_true", help="machine-readable JSON output")
    return p


def register(subparsers: Any) -> None:
    """Add the driver's commands to the ``otalink`` parser."""
    common = _common()

    def add(name: str, handler: Handler, help_: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = subparsers.add_parser(name, parents=[common], help=help_)
        p.set_defaults(func=_run(handler))
        return p

    p = add("status", cmd_status, "campaign state and progress")
    p.add_argument("--watch", action="store_true", help="follow until the campaign ends")
    p.add_argument("--timeout", type=float, default=None, help="stop watching after N s")
    add("check", cmd_check, "check for updates now")
    add("show", cmd_show, "the available update: release notes, size, duration")
    p = add("download", cmd_download, "start downloading the update")
    p.add_argument("--wait", action="store_true", help="show a progress bar until done")
    p.add_argument("--timeout", type=float, default=None)
    add("pause", _simple("/download/pause"), "pause the download")
    add("resume", _simple("/download/resume"), "resume the download")
    add("cancel", cmd_cancel, "cancel the download, or the install before the point of no return")
    p = add("allow-cellular", cmd_allow_cellular, "allow downloading over cellular (metered)")
    p.add_argument("--no", action="store_true", help="withdraw the permission")
    add("preconditions", cmd_preconditions, "the install checklist (exit 3 if any is not met)")
    p = add("install", cmd_install, "install now (--now) or at a time (--at)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--now", action="store_true", help="install now (asks to confirm)")
    g.add_argument("--at", metavar="TIME", help="schedule: 02:00, +30m or ISO 8601")
    p.add_argument("--yes", "-y", action="store_true", help="confirm without asking")
    p.add_argument("--no-wait", action="store_true", help="return once the install started")
    p.add_argument("--timeout", type=float, default=None)
    p = add("schedule", cmd_schedule, "install at TIME (02:00, +30m or ISO 8601)")
    p.add_argument("time", metavar="TIME")
    add("unschedule", _simple("/schedule", "DELETE"), "cancel the scheduled install")
    add("history", cmd_history, "past campaigns")
    p = add("ecus", cmd_ecus, "ECUs: versions and link health")
    p.add_argument("--refresh", action="store_true", help="ask each ECU for a fresh signed report")
    p = add("events", cmd_events, "the event stream as JSON lines")
    p.add_argument("--since", type=int, default=0, help="replay events after this id")
    p.add_argument("--follow", "-f", action="store_true", help="keep streaming new events")
    p.add_argument("--limit", type=int, default=0, help="stop after N events")
