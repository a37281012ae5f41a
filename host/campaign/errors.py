"""Errors the agent raises to its callers (API, CLI), each with a stable string ``code``.

The ui maps them to problem+json: ``Refused`` -> 409/422 style "not now / not allowed",
``NotFound`` -> 404, ``Conflict`` -> 409 (wrong state for the request).
"""

from __future__ import annotations

from typing import Any


class AgentError(Exception):
    """Base of every error the agent reports to its callers."""

    code = "agent_error"

    def __init__(self, code: str | None = None, detail: str = "") -> None:
        if code is not None:
            self.code = code
        self.detail = detail
        super().__init__(f"{self.code}: {detail}" if detail else self.code)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: code + detail (+ subclass fields)."""
        return {"code": self.code, "detail": self.detail}


class Refused(AgentError):
    """The request is understood but refused now: not confirmed, preconditions, policy, PONR."""

    code = "refused"

    def __init__(
        self, code: str, detail: str = "", failing: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(code, detail)
        self.failing: list[dict[str, Any]] = list(failing or [])

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["failing"] = self.failing
        return d


class NotFound(AgentError):
    """Nothing to act on (no update available, unknown ECU, unknown signal)."""

    code = "not_found"


class Conflict(AgentError):
    """The request is illegal in the campaign's current state."""

    code = "conflict"

    def __init__(self, code: str = "conflict", detail: str = "", state: str = "") -> None:
        super().__init__(code, detail)
        self.state = state

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["state"] = self.state
        return d


class ConfigError(AgentError):
    """The agent configuration file is missing, unreadable or invalid."""

    code = "config_invalid"
