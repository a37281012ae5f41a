"""The local API's guards against requests from elsewhere: loopback names only, and no change
from another web origin.

Any web page open in a browser on this machine can reach a loopback API, so besides the ``Host``
check (DNS rebinding, 421 ``not_local``) every request that changes something — POST, PUT,
PATCH or DELETE on an existing route — must carry ``X-Otalink: 1`` (403 ``header_required``): a
form or a "simple" cross-origin request cannot set a custom header, and a cross-origin
``fetch`` that sets one is preflighted, which this API never allows (no CORS). It is also
refused when the browser says it comes from elsewhere: an ``Origin`` other than this API's own,
or ``Sec-Fetch-Site`` other than ``same-origin``/``none`` (403 ``cross_site``).
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal

from fastapi import Depends, Header
from fastapi.routing import APIRoute
from otalink.host.gateway.api.problems import problem_response
from starlette.routing import Match, Route

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
API_HEADER = "X-Otalink"


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
                resp = problem_response("api.not_local", "This API answers loopback names only.")
                await resp(scope, receive, send)
                return
        await self.app(scope, receive, send)


def write_refusal(headers: list[tuple[bytes, bytes]]) -> tuple[str, str] | None:
    """``(code, detail)`` if a mutating request with these (ASGI, lower-case) headers must be
    refused; ``None`` if it may go on. Every ``Origin`` must be this API's own origin (the
    scheme + ``Host`` it was sent to), every ``Sec-Fetch-Site`` ``same-origin`` or ``none``,
    and ``X-Otalink`` must be ``1``."""

    def values(name: bytes) -> list[str]:
        return [v.decode("latin-1").strip().lower() for k, v in headers if k == name]

    host = (values(b"host") or [""])[0]
    for origin in values(b"origin"):
        if origin not in (f"http://{host}", f"https://{host}"):
            return "api.cross_site", f"Requests from {origin[:80]!r} may not change anything here."
    for site in values(b"sec-fetch-site"):
        if site not in ("same-origin", "none"):
            return "api.cross_site", f"A {site[:20]} request may not change anything here."
    if values(API_HEADER.lower().encode()) != ["1"]:
        return (
            "api.header_required",
            f"Requests that change something need the header {API_HEADER}: 1.",
        )
    return None


class SameOriginWrites:
    """ASGI middleware: a request that would change something (a mutating method on an existing
    route) is refused with 403 unless ``write_refusal`` lets it through. Unknown routes and
    methods fall through to their 404 / 405."""

    def __init__(self, app: Any, routes: list[Any]) -> None:
        self.app = app
        self.routes = routes  # the application's live route list

    def _routed(self, scope: Any) -> bool:
        return any(
            isinstance(r, APIRoute | Route) and r.matches(scope)[0] == Match.FULL
            for r in self.routes
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] in MUTATING and self._routed(scope):
            refusal = write_refusal(list(scope.get("headers") or []))
            if refusal is not None:
                resp = problem_response(*refusal)
                await resp(scope, receive, send)
                return
        await self.app(scope, receive, send)


def api_header(
    x_otalink: Annotated[
        Literal["1"],
        Header(
            alias=API_HEADER,
            description="Required on every request that changes something (against "
            "cross-site requests from web pages); a browser page of another origin cannot send it.",
        ),
    ],
) -> None:
    """Documents the header (``SameOriginWrites`` enforces it, with its own 403)."""


WRITE = [Depends(api_header)]  # the dependency every mutating route declares
