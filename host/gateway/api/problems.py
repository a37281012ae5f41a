"""RFC 9457 problem responses: every error the API returns, with a stable ``code``.

The agent raises ``OtalinkError`` families (``Refused`` / ``NotFound`` / ``Conflict`` ...,
``otalink.host.errors``); the API's own refusals are ``ApiProblem`` (``api.*`` codes).
``problem_from_exception`` maps them, validation errors and anything unexpected to a
``application/problem+json`` body, the HTTP status from the one table (``errors.OUTCOMES``).
Nothing unexpected ever leaks a stack trace: it becomes ``api.internal`` with a fixed text, and
the exception is logged on the agent side.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from otalink.host.errors import OtalinkError, UsageError, code_outcome, http_status
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.routing import Match, Route

PROBLEM_TYPE = "application/problem+json"
TYPE_BASE = "https://otalink.invalid/problems/"

log = logging.getLogger("otalink.api")

_TITLES: dict[int, str] = {
    400: "Bad request",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Refused",
    413: "Request too large",
    415: "Unsupported media type",
    421: "Misdirected request",
    422: "Invalid request",
    500: "Internal error",
    502: "Bad gateway",
    503: "Unavailable",
    504: "Gateway timeout",
}


class ApiProblem(UsageError):
    """A refusal of the API layer itself (``api.*``: validation beyond pydantic, unsupported
    ...); its HTTP status comes from the one table (``errors.OUTCOMES``)."""

    def __init__(self, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail, code=code)
        self.extra = extra


def problem_response(
    code: str,
    detail: str,
    headers: dict[str, str] | None = None,
    *,
    status: int | None = None,
    **extra: Any,
) -> JSONResponse:
    """A ``application/problem+json`` response with our stable ``code`` member; ``status`` is
    the table's for ``code`` unless given (an HTTP status the table has no code for)."""
    if status is None:
        status = code_outcome(code, UsageError).http
    return _respond(code, detail, headers, status, extra)


def _respond(
    code: str, detail: str, headers: dict[str, str] | None, status: int, extra: Mapping[str, object]
) -> JSONResponse:
    body: dict[str, object] = {
        "type": TYPE_BASE + code,
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "code": code,
        "detail": detail,
    }
    for key, value in extra.items():
        if key not in body and _jsonable(value):
            body[key] = value
    return JSONResponse(body, status_code=status, media_type=PROBLEM_TYPE, headers=headers)


def _jsonable(value: Any) -> bool:
    if value is None or isinstance(value, str | int | float | bool):
        return True
    if isinstance(value, list | tuple):
        return all(_jsonable(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _jsonable(v) for k, v in value.items())
    return False


def problem_from_exception(exc: BaseException) -> JSONResponse:
    """Map any exception to a problem response (never a traceback)."""
    if isinstance(exc, OtalinkError):
        body = exc.to_dict()
        code = body["code"]
        detail = str(body.get("detail", "") or "") or code.replace("_", " ")
        extra: dict[str, object] = {k: v for k, v in body.items() if k not in ("code", "detail")}
        if isinstance(exc, ApiProblem):
            extra.update(exc.extra)
        return _respond(code, detail, None, http_status(exc), extra)
    log.error("unexpected error in the local API", exc_info=exc)
    return problem_response("api.internal", "The agent hit an unexpected error; see its log.")


# ---- the schema of the error answers (the 2xx answers are the campaign's view models) ----

_PROBLEM: dict[str, Any] = {
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


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of an operation."""
    return {status: _PROBLEM for status in sorted(statuses)}


ERRORS = (404, 409, 422)
BODY_ERRORS = (400, *ERRORS)
# mutating operations: also 403 (cross-site, or without the X-Otalink header)
WRITE_ERRORS = problems(403, *ERRORS)
WRITE_BODY_ERRORS = problems(403, *BODY_ERRORS)


def _allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """Every method some route serves at the request's path (for 405's ``Allow``)."""
    methods: set[str] = set()
    for route in app.routes:
        if isinstance(route, APIRoute | Route) and route.methods:
            match, _ = route.matches(request.scope)
            if match != Match.NONE:
                methods |= set(route.methods)
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(OtalinkError)
    async def _otalink_error(_request: Request, exc: OtalinkError) -> JSONResponse:
        return problem_from_exception(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))[:200]}
            for e in exc.errors()[:10]
        ]
        return problem_response("api.invalid_request", "The request is not valid.", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {
            400: "api.invalid_body",
            404: "api.not_found",
            405: "api.method_not_allowed",
        }.get(exc.status_code, "api.http_error")
        detail = exc.detail if isinstance(exc.detail, str) else "HTTP error"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(app, request))
        return problem_response(code, detail, headers, status=exc.status_code)

    @app.exception_handler(Exception)
    async def _any(_request: Request, exc: Exception) -> JSONResponse:
        return problem_from_exception(exc)
