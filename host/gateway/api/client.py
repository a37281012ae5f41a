"""HTTP client of the agent's local API (httpx): the one code path of the user CLI and the demo.

``ApiClient(base_url)`` returns decoded JSON or raises ``ApiError`` carrying the problem body
and the CLI exit code of its HTTP status in the one table (``otalink.host.errors``): 409 -> 3
refused, 404 -> 4 not found, 422/400 -> 2 usage, ...; an unreachable agent
(``api.unreachable``) -> 5.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
from otalink.host.errors import OtalinkError, code_outcome, exit_for_status
from otalink.host.gateway.campaign.events import EventRecord
from pydantic import TypeAdapter, ValidationError

DEFAULT_API = "http://127.0.0.1:8765"
ENV_API = "OTALINK_API"


def default_api() -> str:
    """``$OTALINK_API`` or the agent's default loopback address."""
    return os.environ.get(ENV_API) or DEFAULT_API


Problem = dict[str, Any]  # a problem+json body (RFC 9457) with a stable ``code``: a JSON edge
EVENT = TypeAdapter(EventRecord)


class ApiError(OtalinkError):
    """A failed API call: ``problem`` is the problem+json body, ``exit_code`` the CLI's."""

    def __init__(self, problem: Problem, exit_code: int) -> None:
        self.problem = problem
        self.exit_code = exit_code
        code = str(problem.get("code") or "api.error")
        super().__init__(str(problem.get("detail") or code), code=code)


class ApiClient:
    """Calls ``/api/v1/...`` on the running agent."""

    def __init__(self, base_url: str | None = None, timeout: float = 30.0) -> None:
        self.base_url = (base_url or default_api()).rstrip("/")
        # X-Otalink: 1 on every request: the API refuses changes without it (docs/ui.md)
        self._http = httpx.Client(
            base_url=self.base_url + "/api/v1", timeout=timeout, headers={"X-Otalink": "1"}
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _unreachable(self, exc: Exception) -> ApiError:
        return ApiError(
            {
                "code": "api.unreachable",
                "detail": f"cannot reach the agent at {self.base_url} "
                f"(is `otalink agent` or `otalink demo` running?): {type(exc).__name__}",
            },
            code_outcome("api.unreachable").exit,
        )

    def call(self, method: str, path: str, body: object = None) -> Any:
        """One request; the decoded JSON answer or ``ApiError``."""
        try:
            resp = self._http.request(method, path, json=body)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        try:
            data = resp.json()
        except ValueError:
            data = None
        if resp.is_success:
            return data
        problem = data if isinstance(data, dict) else {"code": f"api.http_{resp.status_code}"}
        problem.setdefault("detail", resp.reason_phrase)
        raise ApiError(problem, exit_for_status(resp.status_code))

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    def post(self, path: str, body: object = None) -> Any:
        return self.call("POST", path, body)

    def put(self, path: str, body: object) -> Any:
        return self.call("PUT", path, body)

    def delete(self, path: str) -> Any:
        return self.call("DELETE", path)

    def events(self, since: int | None = None, follow: bool = True) -> Iterator[EventRecord]:
        """The SSE stream as decoded event records (``{id, ts, type, data}``)."""
        params = {"follow": "true" if follow else "false"}
        if since is not None:
            params["since"] = str(since)
        timeout = httpx.Timeout(10.0, read=None)
        try:
            with self._http.stream("GET", "/events", params=params, timeout=timeout) as resp:
                if not resp.is_success:
                    resp.read()
                    try:
                        problem = resp.json()
                    except ValueError:
                        problem = {"code": f"api.http_{resp.status_code}"}
                    raise ApiError(problem, exit_for_status(resp.status_code))
                data: list[str] = []
                for line in resp.iter_lines():
                    if line.startswith("data:"):
                        data.append(line[5:].lstrip(" "))
                    elif line == "" and data:
                        try:
                            ev = json.loads("\n".join(data))
                        except ValueError:
                            ev = None
                        data = []
                        try:
                            rec = EVENT.validate_python(ev)
                        except ValidationError:
                            continue  # not an event record: skipped
                        yield rec
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
