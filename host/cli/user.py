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
from typing import Any, TypeVar

from otalink.host.cli.usertext import (
    FAILED,
    Progress,
    dur,
    fields,
    mb,
    preconditions_text,
    status_text,
)
from otalink.host.errors import EXIT_FAILURE, EXIT_OK, EXIT_REFUSED, Refused, UsageError, exit_code
from otalink.host.gateway.api.client import ApiClient, ApiError, Problem, default_api
from otalink.host.gateway.campaign.preconditions import Precondition
from otalink.host.gateway.campaign.record import HistoryEntry
from otalink.host.gateway.campaign.table import PONR_STATES, TERMINAL, State
from otalink.host.gateway.campaign.view import EcuView, Status, UpdateDetails
from pydantic import TypeAdapter, ValidationError

S = State
DONE = (*TERMINAL, S.IDLE)  # --watch follows the campaign until one of these
INSTALLING = (*sorted(PONR_STATES), S.INSTALLING, S.AWAITING_CONFIRMATION)
Handler = Callable[[argparse.Namespace, ApiClient], int]
T = TypeVar("T")

# The API's answers, parsed into the view models the agent answered with (their JSON is --json).
STATUS = TypeAdapter(Status)
DETAILS = TypeAdapter(UpdateDetails)
CHECKLIST = TypeAdapter(list[Precondition])
HISTORY = TypeAdapter(list[HistoryEntry])
ECUS = TypeAdapter(list[EcuView])


def _get(client: ApiClient, kind: TypeAdapter[T], method: str, path: str, body: Any = None) -> T:
    """One API call, its answer as ``kind`` (an answer that is not one: ``api.bad_answer``)."""
    data = client.call(method, path, body)
    try:
        return kind.validate_python(data)
    except ValidationError as exc:
        detail = f"the agent's answer to {method} {path} is not what this CLI reads: {exc}"
        raise ApiError({"code": "api.bad_answer", "detail": detail[:500]}, EXIT_FAILURE) from None


def _status(
    client: ApiClient, method: str = "GET", path: str = "/status", body: Any = None
) -> Status:
    return _get(client, STATUS, method, path, body)


# ---- output helpers -------------------------------------------------------------------------


def _out(args: argparse.Namespace, kind: TypeAdapter[T], value: T, text: str) -> None:
    if args.json:
        exclude_none = kind is HISTORY  # as GET /history answers
        print(kind.dump_json(value, by_alias=True, exclude_none=exclude_none).decode())
    else:
        print(text)


def _watch(
    args: argparse.Namespace,
    client: ApiClient,
    done: Callable[[Status], bool],
    timeout: float | None = None,
) -> Status:
    """Show status until ``done(status)``; returns the last status."""
    prog = Progress()
    last_json = ""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        st = _status(client)
        if args.json:
            doc = STATUS.dump_json(st).decode()
            if doc != last_json:
                print(doc, flush=True)
                last_json = doc
        else:
            prog.show(status_text(st))
        if done(st) or (deadline is not None and time.monotonic() > deadline):
            return st
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
        st = _watch(args, client, lambda s: s.state in DONE, args.timeout)
        return EXIT_FAILURE if st.state in FAILED else EXIT_OK
    st = _status(client)
    _out(args, STATUS, st, status_text(st))
    return EXIT_OK


def cmd_check(args: argparse.Namespace, client: ApiClient) -> int:
    st = _status(client, "POST", "/check")
    _out(args, STATUS, st, status_text(st))
    return EXIT_OK


def cmd_show(args: argparse.Namespace, client: ApiClient) -> int:
    d = _get(client, DETAILS, "GET", "/update")
    lines = [
        f"{d.title or 'Software update'} {d.version}".rstrip(),
        f"download size: {mb(d.download_size)}",
        f"installation takes about {dur(d.est_install_s)}",
    ]
    if d.unavailable_functions:
        lines.append("unavailable while installing: " + ", ".join(d.unavailable_functions))
    pol = d.network_policy
    cell = "allowed" if pol.cellular_allowed else "only with your permission"
    lines.append(f"network: {pol.network} (cellular: {cell})")
    for e in d.ecus:
        lines.append("  ecu " + fields(e.model_dump(mode="json")))
    if d.release_notes:
        lines += ["", "What's new:", d.release_notes]
    _out(args, DETAILS, d, "\n".join(lines))
    return EXIT_OK


def cmd_download(args: argparse.Namespace, client: ApiClient) -> int:
    st = _status(client, "POST", "/download")
    if args.wait:
        st = _watch(args, client, lambda s: s.state != S.DOWNLOADING, args.timeout)
        return EXIT_OK if st.state not in (S.DOWNLOAD_PAUSED, *FAILED) else EXIT_REFUSED
    _out(args, STATUS, st, status_text(st))
    return EXIT_OK


def _simple(path: str, method: str = "POST") -> Handler:
    def handler(args: argparse.Namespace, client: ApiClient) -> int:
        st = _status(client, method, path)
        _out(args, STATUS, st, status_text(st))
        return EXIT_OK

    return handler


def cmd_cancel(args: argparse.Namespace, client: ApiClient) -> int:
    state = _status(client).state
    path = "/download/cancel" if state in (S.DOWNLOADING, S.DOWNLOAD_PAUSED) else "/cancel"
    st = _status(client, "POST", path)
    _out(args, STATUS, st, status_text(st))
    return EXIT_OK


def cmd_allow_cellular(args: argparse.Namespace, client: ApiClient) -> int:
    st = _status(client, "PUT", "/network/cellular", {"allowed": not args.no})
    _out(args, STATUS, st, status_text(st))
    return EXIT_OK


def cmd_preconditions(args: argparse.Namespace, client: ApiClient) -> int:
    items = _get(client, CHECKLIST, "GET", "/preconditions")
    _out(args, CHECKLIST, items, preconditions_text(items))
    return EXIT_OK if all(p.ok for p in items) else EXIT_REFUSED


def _confirm(args: argparse.Namespace, client: ApiClient) -> bool:
    if args.yes:
        return True
    if not sys.stdin.isatty():
        return False
    try:
        d = _get(client, DETAILS, "GET", "/update")
        est, off = dur(d.est_install_s), ", ".join(d.unavailable_functions) or "driving"
    except ApiError:
        est, off = "?", "driving"
    answer = input(f"Install now? It takes about {est}; unavailable meanwhile: {off}. [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def cmd_install(args: argparse.Namespace, client: ApiClient) -> int:
    if args.at:
        return _schedule(args, client, args.at)
    if not _confirm(args, client):
        refused = Refused(
            "campaign.confirmation_required",
            "the installation needs the driver's confirmation (--yes)",
        )
        _err(args, {"code": refused.code, "detail": refused.detail})
        return exit_code(refused)
    st = _status(client, "POST", "/install", {"confirm": True})
    if args.no_wait:
        _out(args, STATUS, st, status_text(st))
        return EXIT_OK
    st = _watch(args, client, lambda s: s.state not in INSTALLING, args.timeout)
    if not args.json:
        print(f"result: {st.state}" + (f" ({st.reason})" if st.reason else ""))
    if st.state in FAILED:
        return EXIT_FAILURE
    return EXIT_OK if st.state == S.SUCCEEDED else EXIT_REFUSED


def _schedule(args: argparse.Namespace, client: ApiClient, text: str) -> int:
    try:
        at = parse_time(text)
    except ValueError as exc:
        bad = UsageError(str(exc), code="usage.invalid_time")
        _err(args, {"code": bad.code, "detail": bad.detail})
        return exit_code(bad)
    st = _status(client, "PUT", "/schedule", {"at": at.isoformat()})
    _out(args, STATUS, st, status_text(st))
    return EXIT_OK


def cmd_schedule(args: argparse.Namespace, client: ApiClient) -> int:
    return _schedule(args, client, args.time)


def cmd_history(args: argparse.Namespace, client: ApiClient) -> int:
    items = _get(client, HISTORY, "GET", "/history")
    lines = []
    for h in items:
        doc = h.model_dump(mode="json", by_alias=True, exclude_none=True)
        lines.append("  ".join(f"{k}={v}" for k, v in doc.items() if not isinstance(v, dict)))
    _out(args, HISTORY, items, "\n".join(lines) if lines else "(no campaigns yet)")
    return EXIT_OK


def cmd_ecus(args: argparse.Namespace, client: ApiClient) -> int:
    # --refresh asks every ECU for a fresh signed report first (link health and versions are
    # otherwise what the agent last heard; before the first answer a link is not ok).
    if args.refresh:
        items = _get(client, ECUS, "POST", "/ecus/refresh")
    else:
        items = _get(client, ECUS, "GET", "/ecus")
    lines = []
    for e in items:
        doc = e.model_dump(mode="json")
        parts = [f"{k}={v}" for k, v in doc.items() if not isinstance(v, dict | list)]
        parts.append("link: " + " ".join(f"{k}={v}" for k, v in doc["link"].items()))
        lines.append("  ".join(parts))
    _out(args, ECUS, items, "\n".join(lines) if lines else "(no ECUs configured)")
    return EXIT_OK


def cmd_events(args: argparse.Namespace, client: ApiClient) -> int:
    for count, ev in enumerate(client.events(since=args.since, follow=args.follow), 1):
        print(json.dumps(ev, ensure_ascii=False, default=str), flush=True)
        if args.limit and count >= args.limit:
            break
    return EXIT_OK


# ---- wiring -------------------------------------------------------------------------------------


def _err(args: argparse.Namespace, problem: Problem) -> None:
    if getattr(args, "json", False):
        print(json.dumps(problem, ensure_ascii=False, default=str))
        return
    print(f"otalink: {problem.get('detail') or problem.get('code')}", file=sys.stderr)
    try:
        failing = CHECKLIST.validate_python(problem.get("failing") or [])
    except ValidationError:
        failing = []
    if failing:
        print(preconditions_text(failing), file=sys.stderr)


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
