"""The local API of the host agent: JSON over HTTP, an SSE event stream, and the screen.

``create_app(agent)`` builds the FastAPI application. Every route lives under ``/api/v1``;
``/`` serves the infotainment screen (``otalink.host.web``). Requests are validated by pydantic
models that forbid unknown members; every error is ``application/problem+json`` with a stable
``code`` (see ``problems.py``). The agent's methods may block (network refresh, serial I/O), so
the handlers are plain functions FastAPI runs in its thread pool.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Protocol

from fastapi import FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from otalink.host.api.events import event_stream_response
from otalink.host.api.problems import ApiProblem, problem_from_exception, problem_response
from otalink.host.campaign.errors import AgentError
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

API_VERSION = "1"
PREFIX = "/api/v1"
VSS_PATH = re.compile(r"^Vehicle(\.[A-Za-z][A-Za-z0-9_]{0,63}){1,8}$")
MAX_SIGNALS_PER_PUT = 32
VssPath = Annotated[str, StringConstraints(pattern=VSS_PATH.pattern, max_length=400)]
SignalValue = (
    Annotated[str, StringConstraints(max_length=256)]
    | StrictBool
    | int
    | Annotated[float, Field(allow_inf_nan=False)]
)


class AgentLike(Protocol):
    """The part of ``otalink.host.agent.Agent`` the API uses."""

    events: Any
    signals: Any

    def status(self) -> dict[str, Any]: ...
    def update_details(self) -> dict[str, Any] | None: ...
    def check(self) -> Any: ...
    def download_start(self) -> Any: ...
    def download_pause(self) -> Any: ...
    def download_resume(self) -> Any: ...
    def download_cancel(self) -> Any: ...
    def allow_cellular(self, allowed: bool) -> Any: ...
    def preconditions(self) -> list[dict[str, Any]]: ...
    def install(self, confirm: bool) -> Any: ...
    def schedule(self, at: datetime) -> Any: ...
    def unschedule(self) -> Any: ...
    def cancel(self) -> Any: ...
    def acknowledge(self) -> Any: ...
    def history(self) -> list[dict[str, Any]]: ...
    def ecus(self) -> list[dict[str, Any]]: ...
    def refresh_ecus(self) -> list[dict[str, Any]]: ...


# ---- request bodies -----------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InstallRequest(_Strict):
    """Start the installation now; ``confirm`` must be ``true`` (the driver's explicit yes)."""

    confirm: StrictBool = Field(description="Must be true: the driver confirmed the installation.")


class ScheduleRequest(_Strict):
    """Install at a chosen time (ISO 8601; without an offset it is the vehicle's local time)."""

    at: datetime = Field(description="When to install, e.g. 2026-11-28T02:00:00+01:00.")


class CellularRequest(_Strict):
    """Allow (or stop allowing) the download over a metered (cellular) link."""

    allowed: StrictBool


class SignalsRequest(_Strict):
    """Set simulated vehicle signals: VSS path -> value (the demo's signal simulator)."""

    signals: dict[VssPath, SignalValue] = Field(
        min_length=1,
        max_length=MAX_SIGNALS_PER_PUT,
        description='e.g. {"Vehicle.Powertrain.Transmission.SelectedGear": 126}',
        json_schema_extra={
            "additionalProperties": False,
            "propertyNames": {"pattern": VSS_PATH.pattern, "maxLength": 400},
        },
    )


def _local(at: datetime) -> datetime:
    """Naive times are the vehicle's local time."""
    return at.astimezone() if at.tzinfo is None else at


# ---- responses ------------------------------------------------------------------------------

JsonObject = dict[str, Any]
_PROBLEM_SCHEMA: dict[str, Any] = {
    "content": {
        "application/problem+json": {
            "schema": {
                "type": "object",
                "required": ["type", "title", "status", "code", "detail"],
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "code": {"type": "string", "description": "stable machine-readable code"},
                    "detail": {"type": "string"},
                },
            }
        }
    },
    "description": "Problem details (RFC 9457) with a stable `code`.",
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: _PROBLEM_SCHEMA,
    409: _PROBLEM_SCHEMA,
    422: _PROBLEM_SCHEMA,
}
_BODY_ERRORS: dict[int | str, dict[str, Any]] = {400: _PROBLEM_SCHEMA, **_ERRORS}


def _host_is_local(host_header: str) -> bool:
    """``Host`` names this machine (defeats DNS rebinding: a page of another origin that
    resolves its own name to 127.0.0.1 still sends its own name)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LocalHostOnly:
    """ASGI middleware: refuse requests whose ``Host`` is not a loopback name (421)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            host = headers.get(b"host", b"").decode("latin-1")
            if not _host_is_local(host):
                resp = problem_response(421, "not_local", "This API answers loopback names only.")
                await resp(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _web_dir() -> Path:
    return Path(str(resources.files("otalink.host.web")))


def create_app(agent: AgentLike) -> FastAPI:
    """The FastAPI application serving ``agent`` (API + event stream + screen)."""
    app = FastAPI(
        title="otalink local API",
        version=API_VERSION,
        description=(
            "Loopback-only API of the otalink host agent: the update campaign, the vehicle's "
            "preconditions and the ECUs. Errors are application/problem+json with a stable code."
        ),
        docs_url=None,
        redoc_url=None,
        openapi_url=PREFIX + "/openapi.json",
    )
    _install_error_handlers(app)
    app.add_middleware(LocalHostOnly)

    def ok(result: Any = None) -> JsonObject:
        """Mutating calls answer with the status after the change."""
        return agent.status()

    @app.get(PREFIX + "/status", tags=["campaign"], summary="Campaign state and progress")
    def get_status() -> JsonObject:
        return agent.status()

    @app.get(
        PREFIX + "/update",
        tags=["campaign"],
        summary="The available update's details",
        responses=_ERRORS,
    )
    def get_update() -> JsonObject:
        details = agent.update_details()
        if details is None:
            raise ApiProblem(404, "no_update", "No update is available.")
        return details

    @app.post(PREFIX + "/check", tags=["campaign"], summary="Check for updates now")
    def post_check() -> JsonObject:
        return ok(agent.check())

    @app.post(
        PREFIX + "/download",
        tags=["download"],
        summary="Start downloading the update",
        responses=_ERRORS,
    )
    def post_download() -> JsonObject:
        return ok(agent.download_start())

    @app.post(PREFIX + "/download/pause", tags=["download"], responses=_ERRORS)
    def post_download_pause() -> JsonObject:
        return ok(agent.download_pause())

    @app.post(PREFIX + "/download/resume", tags=["download"], responses=_ERRORS)
    def post_download_resume() -> JsonObject:
        return ok(agent.download_resume())

    @app.post(PREFIX + "/download/cancel", tags=["download"], responses=_ERRORS)
    def post_download_cancel() -> JsonObject:
        return ok(agent.download_cancel())

    @app.put(
        PREFIX + "/network/cellular",
        tags=["download"],
        summary="Allow downloading over a metered (cellular) link",
        responses=_BODY_ERRORS,
    )
    def put_cellular(body: CellularRequest) -> JsonObject:
        return ok(agent.allow_cellular(body.allowed))

    @app.get(PREFIX + "/preconditions", tags=["campaign"], summary="The install checklist")
    def get_preconditions() -> list[JsonObject]:
        return agent.preconditions()

    @app.post(
        PREFIX + "/install",
        tags=["campaign"],
        summary='Install now (requires {"confirm": true})',
        responses=_BODY_ERRORS,
    )
    def post_install(body: InstallRequest) -> JsonObject:
        if body.confirm is not True:
            raise ApiProblem(
                409, "confirmation_required", "The driver must confirm the installation."
            )
        return ok(agent.install(confirm=True))

    @app.get(PREFIX + "/schedule", tags=["schedule"], summary="The scheduled install, if any")
    def get_schedule() -> JsonObject:
        sched = agent.status().get("schedule")
        return sched if isinstance(sched, dict) else {"at": None}

    @app.put(PREFIX + "/schedule", tags=["schedule"], responses=_BODY_ERRORS)
    def put_schedule(body: ScheduleRequest) -> JsonObject:
        agent.schedule(_local(body.at))
        return agent.status()

    @app.delete(PREFIX + "/schedule", tags=["schedule"], responses=_ERRORS)
    def delete_schedule() -> JsonObject:
        return ok(agent.unschedule())

    @app.post(
        PREFIX + "/cancel",
        tags=["campaign"],
        summary="Stop the install (refused after the point of no return)",
        responses=_ERRORS,
    )
    def post_cancel() -> JsonObject:
        return ok(agent.cancel())

    @app.post(
        PREFIX + "/acknowledge",
        tags=["campaign"],
        summary="Dismiss a finished campaign (back to idle)",
        responses=_ERRORS,
    )
    def post_acknowledge() -> JsonObject:
        return ok(agent.acknowledge())

    @app.get(PREFIX + "/history", tags=["campaign"], summary="Past campaigns")
    def get_history() -> list[JsonObject]:
        return agent.history()

    @app.get(PREFIX + "/ecus", tags=["vehicle"], summary="ECUs: versions and link health")
    def get_ecus() -> list[JsonObject]:
        return agent.ecus()

    @app.post(
        PREFIX + "/ecus/refresh",
        tags=["vehicle"],
        summary="Ask every ECU for a fresh signed version report",
        responses=_ERRORS,
    )
    def post_ecus_refresh() -> list[JsonObject]:
        return agent.refresh_ecus()

    @app.get(PREFIX + "/signals", tags=["vehicle"], summary="Vehicle signals (VSS)")
    def get_signals() -> JsonObject:
        return {"signals": _snapshot(agent.signals)}

    @app.put(
        PREFIX + "/signals",
        tags=["vehicle"],
        summary="Set simulated vehicle signals",
        responses=_BODY_ERRORS,
    )
    def put_signals(body: SignalsRequest) -> JsonObject:
        for path, value in body.signals.items():
            agent.signals.set(path, value)
        return {"signals": _snapshot(agent.signals)}

    @app.get(
        PREFIX + "/events",
        tags=["events"],
        summary="Server-Sent Events: state changes and progress, replay via Last-Event-ID",
        response_class=Response,
        responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
    )
    def get_events(
        request: Request,
        last_event_id: Annotated[str | None, Header(max_length=20)] = None,
        since: Annotated[int | None, Query(ge=0, le=2**53)] = None,
        follow: Annotated[bool, Query()] = True,
    ) -> Response:
        start = since
        if last_event_id is not None:
            try:
                start = int(last_event_id)
            except ValueError:
                raise ApiProblem(
                    422, "invalid_request", "Last-Event-ID must be an event id."
                ) from None
            start = max(start, 0)
        return event_stream_response(request, agent.events, start, follow=follow)

    web = _web_dir()

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(web / "index.html", media_type="text/html; charset=utf-8")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Any:
        if not re.fullmatch(r"[a-z0-9_-]{1,40}\.(css|js|svg|png)", name):
            raise ApiProblem(404, "not_found", "No such file.")
        path = web / name
        if not path.is_file():
            raise ApiProblem(404, "not_found", "No such file.")
        media = {
            "css": "text/css; charset=utf-8",
            "js": "text/javascript; charset=utf-8",
            "svg": "image/svg+xml",
            "png": "image/png",
        }[name.rsplit(".", 1)[1]]
        return FileResponse(path, media_type=media)

    return app


def _snapshot(signals: Any) -> JsonObject:
    snap = signals.snapshot()
    return dict(snap) if isinstance(snap, dict) else {}


def _allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """Every method some route serves at the request's path (for 405's ``Allow``)."""
    methods: set[str] = set()
    for route in app.routes:
        if isinstance(route, APIRoute | Route) and route.methods:
            match, _ = route.matches(request.scope)
            if match != Match.NONE:
                methods |= set(route.methods)
    return sorted(methods)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiProblem)
    async def _api_problem(_request: Request, exc: ApiProblem) -> JSONResponse:
        return problem_from_exception(exc)

    @app.exception_handler(AgentError)
    async def _agent_error(_request: Request, exc: AgentError) -> JSONResponse:
        return problem_from_exception(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))[:200]}
            for e in exc.errors()[:10]
        ]
        return problem_response(422, "invalid_request", "The request is not valid.", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {
            400: "invalid_body",
            404: "not_found",
            405: "method_not_allowed",
        }.get(exc.status_code, "http_error")
        detail = exc.detail if isinstance(exc.detail, str) else "HTTP error"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(app, request))
        return problem_response(exc.status_code, code, detail, headers=headers)

    @app.exception_handler(Exception)
    async def _any(_request: Request, exc: Exception) -> JSONResponse:
        return problem_from_exception(exc)
