"""RFC 9457 problem responses: every error the API returns, with a stable ``code``.

The agent raises ``Refused`` / ``NotFound`` / ``Conflict`` (``otalink.host.campaign.errors``);
``problem_from_exception`` maps them, validation errors and anything unexpected to a
``application/problem+json`` body. Nothing unexpected ever leaks a stack trace: it becomes
``internal`` with a fixed text, and the exception is logged on the agent side.
"""

from __future__ import annotations

import logging
from typing import Any

from otalink.host.campaign.errors import AgentError, ConfigError, Conflict, NotFound, Refused
from starlette.responses import JSONResponse

PROBLEM_TYPE = "application/problem+json"
TYPE_BASE = "https://otalink.invalid/problems/"

log = logging.getLogger("otalink.api")

_TITLES: dict[int, str] = {
    400: "Bad request",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Refused",
    413: "Request too large",
    415: "Unsupported media type",
    421: "Misdirected request",
    422: "Invalid request",
    500: "Internal error",
    503: "Unavailable",
}


class ApiProblem(Exception):
    """An error raised by the API layer itself (validation beyond pydantic, unsupported ...)."""

    def __init__(self, status: int, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.extra = extra


def problem_response(
    status: int,
    code: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A ``application/problem+json`` response with our stable ``code`` member."""
    body: dict[str, Any] = {
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


def status_for(exc: AgentError) -> int:
    """HTTP status of an agent error family."""
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Refused | Conflict):
        return 409
    if isinstance(exc, ConfigError):
        return 503
    return 500


def problem_from_exception(exc: BaseException) -> JSONResponse:
    """Map any exception to a problem response (never a traceback)."""
    if isinstance(exc, ApiProblem):
        return problem_response(exc.status, exc.code, exc.detail, **exc.extra)
    if isinstance(exc, AgentError):
        body = exc.to_dict()
        code = str(body.pop("code", exc.code))
        detail = str(body.pop("detail", "")) or code.replace("_", " ")
        return problem_response(status_for(exc), code, detail, **body)
    log.error("unexpected error in the local API", exc_info=exc)
    return problem_response(500, "internal", "The agent hit an unexpected error; see its log.")
