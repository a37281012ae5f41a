"""The local API of the host agent: JSON over HTTP, an SSE event stream, and the screen.

``create_app(agent)`` builds the FastAPI application. Every route lives under ``/api/v1``; ``/``
serves the infotainment screen (``otalink.host.gateway.web``). Requests are validated by pydantic
models that forbid unknown members; every error is ``application/problem+json`` with a stable
``code`` (see ``problems.py``); every answer is one of the campaign's view models
(``campaign/view.py``), which gives the OpenAPI file its response schemas. The agent's methods
may block (network refresh, serial I/O), so the handlers are plain functions FastAPI runs in its
thread pool. Requests from elsewhere (a foreign ``Host``, a change without ``X-Otalink: 1`` or
from another origin) are refused by ``guard.py``.
"""

from __future__ import annotations

import re
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Protocol

from fastapi import FastAPI, Header, Query, Request
from fastapi.responses import FileResponse, Response
from otalink.host.errors import NotFound, Refused
from otalink.host.gateway.api.events import event_stream_response
from otalink.host.gateway.api.guard import WRITE, LocalHostOnly, SameOriginWrites
from otalink.host.gateway.api.problems import (
    ERRORS,
    WRITE_BODY_ERRORS,
    WRITE_ERRORS,
    ApiProblem,
    install_error_handlers,
    problems,
)
from otalink.host.gateway.campaign.commands import Commands
from otalink.host.gateway.campaign.events import EventLog
from otalink.host.gateway.campaign.preconditions import Precondition
from otalink.host.gateway.campaign.record import HistoryEntry
from otalink.host.gateway.campaign.view import (
    EcuView,
    NoSchedule,
    ScheduleView,
    Signals,
    Status,
    UpdateDetails,
    View,
)
from otalink.host.gateway.vehicle.signals import SignalSource
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints

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
    """The part of ``otalink.host.gateway.campaign.agent.Agent`` the API uses: the command
    facade, the view model, the event log and the vehicle signals."""

    @property
    def commands(self) -> Commands: ...
    @property
    def view(self) -> View: ...
    @property
    def events(self) -> EventLog: ...
    @property
    def signals(self) -> SignalSource: ...


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


def _web_dir() -> Path:
    return Path(str(resources.files("otalink.host.gateway.web")))


def create_app(agent: AgentLike) -> FastAPI:
    """The FastAPI application serving ``agent`` (API + event stream + screen)."""
    app = FastAPI(
        title="otalink local API",
        version=API_VERSION,
        description=(
            "Loopback-only API of the otalink host agent: the update campaign, the vehicle's "
            "preconditions and the ECUs. Errors are application/problem+json with a stable code. "
            "Every request that changes something needs the header X-Otalink: 1 and is refused "
            "(403) when its Origin or Sec-Fetch-Site says it comes from another site."
        ),
        docs_url=None,
        redoc_url=None,
        openapi_url=PREFIX + "/openapi.json",
    )
    install_error_handlers(app)
    app.add_middleware(SameOriginWrites, routes=app.router.routes)
    app.add_middleware(LocalHostOnly)  # outermost: a foreign Host is refused first

    @app.get(PREFIX + "/status", tags=["campaign"], summary="Campaign state and progress")
    def get_status() -> Status:
        return agent.view.status()

    @app.get(
        PREFIX + "/update",
        tags=["campaign"],
        summary="The available update's details",
        responses=problems(*ERRORS),
    )
    def get_update() -> UpdateDetails:
        details = agent.view.update_details()
        if details is None:
            raise NotFound("campaign.no_update", "No update is available.")
        return details

    @app.post(
        PREFIX + "/check",
        tags=["campaign"],
        summary="Check for updates now",
        responses=WRITE_ERRORS,
        dependencies=WRITE,
    )
    def post_check() -> Status:
        agent.commands.check()
        return agent.view.status()

    @app.post(
        PREFIX + "/download",
        tags=["download"],
        summary="Start downloading the update",
        responses=WRITE_ERRORS,
        dependencies=WRITE,
    )
    def post_download() -> Status:
        agent.commands.download_start()
        return agent.view.status()

    @app.post(
        PREFIX + "/download/pause", tags=["download"], responses=WRITE_ERRORS, dependencies=WRITE
    )
    def post_download_pause() -> Status:
        agent.commands.download_pause()
        return agent.view.status()

    @app.post(
        PREFIX + "/download/resume", tags=["download"], responses=WRITE_ERRORS, dependencies=WRITE
    )
    def post_download_resume() -> Status:
        agent.commands.download_resume()
        return agent.view.status()

    @app.post(
        PREFIX + "/download/cancel", tags=["download"], responses=WRITE_ERRORS, dependencies=WRITE
    )
    def post_download_cancel() -> Status:
        agent.commands.download_cancel()
        return agent.view.status()

    @app.put(
        PREFIX + "/network/cellular",
        tags=["download"],
        summary="Allow downloading over a metered (cellular) link",
        responses=WRITE_BODY_ERRORS,
        dependencies=WRITE,
    )
    def put_cellular(body: CellularRequest) -> Status:
        agent.commands.allow_cellular(body.allowed)
        return agent.view.status()

    @app.get(PREFIX + "/preconditions", tags=["campaign"], summary="The install checklist")
    def get_preconditions() -> list[Precondition]:
        return agent.view.preconditions()

    @app.post(
        PREFIX + "/install",
        tags=["campaign"],
        summary='Install now (requires {"confirm": true})',
        responses=WRITE_BODY_ERRORS,
        dependencies=WRITE,
    )
    def post_install(body: InstallRequest) -> Status:
        if body.confirm is not True:
            raise Refused(
                "campaign.confirmation_required", "The driver must confirm the installation."
            )
        agent.commands.install(confirm=True)
        return agent.view.status()

    @app.get(PREFIX + "/schedule", tags=["schedule"], summary="The scheduled install, if any")
    def get_schedule() -> ScheduleView | NoSchedule:
        return agent.view.schedule()

    @app.put(
        PREFIX + "/schedule", tags=["schedule"], responses=WRITE_BODY_ERRORS, dependencies=WRITE
    )
    def put_schedule(body: ScheduleRequest) -> Status:
        agent.commands.schedule(_local(body.at))
        return agent.view.status()

    @app.delete(PREFIX + "/schedule", tags=["schedule"], responses=WRITE_ERRORS, dependencies=WRITE)
    def delete_schedule() -> Status:
        agent.commands.unschedule()
        return agent.view.status()

    @app.post(
        PREFIX + "/cancel",
        tags=["campaign"],
        summary="Stop the install (refused after the point of no return)",
        responses=WRITE_ERRORS,
        dependencies=WRITE,
    )
    def post_cancel() -> Status:
        agent.commands.cancel()
        return agent.view.status()

    @app.post(
        PREFIX + "/acknowledge",
        tags=["campaign"],
        summary="Dismiss a finished campaign (back to idle)",
        responses=WRITE_ERRORS,
        dependencies=WRITE,
    )
    def post_acknowledge() -> Status:
        agent.commands.acknowledge()
        return agent.view.status()

    @app.get(
        PREFIX + "/history",
        tags=["campaign"],
        summary="Past campaigns",
        response_model_exclude_none=True,
    )
    def get_history() -> list[HistoryEntry]:
        return agent.view.history()

    @app.get(PREFIX + "/ecus", tags=["vehicle"], summary="ECUs: versions and link health")
    def get_ecus() -> list[EcuView]:
        return agent.view.ecus()

    @app.post(
        PREFIX + "/ecus/refresh",
        tags=["vehicle"],
        summary="Ask every ECU for a fresh signed version report",
        responses=WRITE_ERRORS,
        dependencies=WRITE,
    )
    def post_ecus_refresh() -> list[EcuView]:
        agent.commands.refresh_ecus()
        return agent.view.ecus()

    @app.get(PREFIX + "/signals", tags=["vehicle"], summary="Vehicle signals (VSS)")
    def get_signals() -> Signals:
        return agent.view.signals()

    @app.put(
        PREFIX + "/signals",
        tags=["vehicle"],
        summary="Set simulated vehicle signals",
        responses=WRITE_BODY_ERRORS,
        dependencies=WRITE,
    )
    def put_signals(body: SignalsRequest) -> Signals:
        for path, value in body.signals.items():
            agent.signals.set(path, value)
        return agent.view.signals()

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
        raw_since = request.query_params.get("since")
        if raw_since is not None and not re.fullmatch(r"[0-9]{1,16}", raw_since, re.ASCII):
            # pydantic would also take "1_0" or " 1"
            raise ApiProblem("api.invalid_request", "since must be an event id.")
        start = since
        if last_event_id is not None:
            # ASCII digits only: int() would also take "+5", "1_0", " 5" or "٣"
            if not re.fullmatch(r"[0-9]{1,20}", last_event_id.strip(), re.ASCII):
                raise ApiProblem("api.invalid_request", "Last-Event-ID must be an event id.")
            start = int(last_event_id)
        return event_stream_response(request, agent.events, start, follow=follow)

    web = _web_dir()

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(web / "index.html", media_type="text/html; charset=utf-8")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Any:
        if not re.fullmatch(r"[a-z0-9_-]{1,40}\.(css|js|svg|png)", name):
            raise ApiProblem("api.not_found", "No such file.")
        path = web / name
        if not path.is_file():
            raise ApiProblem("api.not_found", "No such file.")
        media = {
            "css": "text/css; charset=utf-8",
            "js": "text/javascript; charset=utf-8",
            "svg": "image/svg+xml",
            "png": "image/png",
        }[name.rsplit(".", 1)[1]]
        return FileResponse(path, media_type=media)

    return app
