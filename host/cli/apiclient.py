"""HTTP client of the agent's local API (httpx): the one code path of the user CLI.

``ApiClient(base_url)`` returns decoded JSON or raises ``ApiError`` carrying the problem body
and the CLI exit code it maps to (docs/architecture.md): 409 -> 3 refused, 404 -> 4 not found,
422/400 -> 2 usage, unreachable agent -> 5, anything else -> 1.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
from otalink.host import cli as _cli

# The CLI has one exit-code table (otalink.host.cli); re-exported here for the commands.
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = _cli.EXIT_OK, _cli.EXIT_FAILURE, _cli.EXIT_USAGE
EXIT_REFUSED, EXIT_NOT_FOUND, EXIT_LINK = _cli.EXIT_REFUSED, _cli.EXIT_NOT_FOUND, _cli.EXIT_LINK

DEFAULT_API = "http://127.0.0.1:8765"
ENV_API = "OTALINK_API"


def default_api() -> str:
    """``$OTALINK_API`` or the agent's default loopback address."""
    return os.environ.get(ENV_API) or DEFAULT_API


class ApiError(Exception):
    """A failed API call: ``problem`` is the problem+json body, ``exit_code`` the CLI's."""

    def __init__(self, problem: dict[str, Any], exit_code: int) -> None:
        self.problem = problem
        self.exit_code = exit_code
        super().__init__(str(problem.get("detail") or problem.get("code") or "error"))

    @property
    def code(self) -> str:
        return str(self.problem.get("code", "error"))


def _exit_for(status: int) -> int:
    if status == 409:
        return EXIT_REFUSED
    if status == 404:
        return EXIT_NOT_FOUND
    if status in (400, 422):
        return EXIT_USAGE
    return EXIT_FAILURE


class ApiClient:
    """Calls ``/api/v1/...`` on the running agent."""

    def __init__(self, base_url: str | None = None, timeout: float = 30.0) -> None:
        self.base_url = (base_url or default_api()).rstrip("/")
        self._http = httpx.Client(base_url=self.base_url + "/api/v1", timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _unreachable(self, exc: Exception) -> ApiError:
        return ApiError(
            {
                "code": "agent_unreachable",
                "detail": f"cannot reach the agent at {self.base_url} "
                f"(is `otalink agent` or `otalink demo` running?): {type(exc).__name__}",
            },
            EXIT_LINK,
        )

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
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
        problem = data if isinstance(data, dict) else {"code": f"http_{resp.status_code}"}
        problem.setdefault("detail", resp.reason_phrase)
        raise ApiError(problem, _exit_for(resp.status_code))

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.call("POST", path, body)

    def put(self, path: str, body: dict[str, Any]) -> Any:
        return self.call("PUT", path, body)

    def delete(self, path: str) -> Any:
        return self.call("DELETE", path)

    def events(self, since: int | None = None, follow: bool = True) -> Iterator[dict[str, Any]]:
        """The SSE stream as decoded event records (``{id, ts, type, data}``)."""
        params: dict[str, Any] = {"follow": "true" if follow else "false"}
        if since is not None:
            params["since"] = since
        timeout = httpx.Timeout(10.0, read=None)
        try:
            with self._http.stream("GET", "/events", params=params, timeout=timeout) as resp:
                if not resp.is_success:
                    resp.read()
                    try:
                        problem = resp.json()
                    except ValueError:
                        problem = {"code": f"http_{resp.status_code}"}
                    raise ApiError(problem, _exit_for(resp.status_code))
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
                        if isinstance(ev, dict):
                            yield ev
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
