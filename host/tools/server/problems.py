"""RFC 9457 problem documents of the update server, each with a stable ``code``."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from pydantic import JsonValue

PROBLEM_TYPE = "application/problem+json"
# the standard library's own refusals (``send_error``) -> our codes
CODES = {
    400: "bad_request",
    404: "not_found",
    408: "timeout",
    411: "length_required",
    413: "report_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    431: "headers_too_large",
    500: "internal",
    501: "not_implemented",
    505: "http_version_not_supported",
}


def problem_body(status: int, code: str, detail: str, **extra: Any) -> bytes:
    """An RFC 9457 problem document with our stable ``code``."""
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    doc: dict[str, JsonValue] = {
        "type": f"https://otalink.invalid/problems/{code}",
        "title": title,
        "status": status,
        "code": code,
        "detail": detail,
    }
    doc.update({k: v for k, v in extra.items() if k not in doc})
    return json.dumps(doc, allow_nan=False).encode()


class Refused(Exception):
    """Answer the request with a problem (raised by the request parsers)."""

    def __init__(self, status: int, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.extra = status, code, detail, extra
