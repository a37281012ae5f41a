"""The one error root of the host, its families by layer, and the one outcome table.

Every error the host reports is an :class:`OtalinkError` with a stable ``code`` spelled
``family.name`` (``download.slow_retrieval``, ``ecu_rejected.e_sig_invalid``,
``campaign.not_downloaded``, ``deploy.port_not_found``). The families follow the layers:

=====================  =========================  ============================================
family class           code families              raised when
=====================  =========================  ============================================
``TrustError``         ``trust.*``                a security check failed (metadata, plan,
                                                  instruction, target): nothing from it is used
``TransportError``     ``download.*``,            the network, the server or an ECU line failed
                       ``ecu_link.*``,            (a retry may help; a partial download is kept)
                       ``ecu_protocol.*``
``DeviceRejected``     ``ecu_rejected.*``         an ECU answered with a wire error code
``CampaignError``      ``campaign.*``             the agent refuses a request:
  ``Refused``                                     not now (preconditions, confirmation, PONR)
  ``Conflict``                                    not in this campaign state
  ``NotFound``                                    nothing to act on
``ConfigError``        ``config.*``               a configuration, key or profile is unusable
``UsageError``         ``usage.*``, ``api.*``     a caller's request or arguments are invalid
``ToolError``          ``repo.*``, ``deploy.*``,  an operator tool or a simulator failed
                       ``bundle.*``, ``demo.*``
=====================  =========================  ============================================

The layers keep their own bases beside the family (``UpdateError``, ``EcuError``,
``DeployError``): ``except EcuError`` still catches every ECU client error, and
``isinstance(exc, TransportError)`` every link or download failure, wherever it came from.

:data:`OUTCOMES` is the one table from an error to the local API's HTTP status
(problem+json) and the ``otalink`` command's exit code: a row for the error's exact ``code``
wins, else the row of the nearest family class. The API (``gateway.api.problems``), its client
(``gateway.api.client``) and every CLI command use it; nothing else maps errors to numbers.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple, Required, TypedDict

from pydantic import JsonValue

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
EXIT_REFUSED: Final = 3
EXIT_NOT_FOUND: Final = 4
EXIT_LINK: Final = 5


class FailingCheck(TypedDict):
    """A precondition that broke, with the driver's fix (the ``failing`` of a refusal): the
    JSON of the campaign's ``Precondition``."""

    id: str
    ok: bool
    value: JsonValue
    required: str
    hint: str
    status: str
    signals: list[str]


class ErrorBody(TypedDict, total=False):
    """The JSON-able form of an error (``to_dict``): its code and detail, plus the fields of
    the classes that add some (a refusal's ``failing``, a conflict's ``state``, a tool error's
    ``message`` and ``exit``)."""

    code: Required[str]
    detail: str | int
    failing: list[FailingCheck]
    state: str
    message: str
    exit: int


class OtalinkError(Exception):
    """Root of every error the host reports; ``code`` is stable (``family.name``)."""

    code: str = "otalink.error"
    detail: Any  # the human text (the ECU client: the wire's detail integer)

    def __init__(self, detail: str = "", *, code: str | None = None) -> None:
        if code is not None:
            self.code = code
        self.detail = detail
        super().__init__(detail or self.code)

    def to_dict(self) -> ErrorBody:
        """JSON-able form: code + detail (+ subclass fields)."""
        return {"code": self.code, "detail": self.detail}


class TrustError(OtalinkError):
    """A security check failed; the update is refused and nothing from it is used."""

    code = "trust.error"


class TransportError(OtalinkError):
    """The network, the update server or an ECU line failed; retrying later may help."""

    code = "transport.error"


class DeviceRejected(OtalinkError):
    """An ECU refused a request: ``wire_code`` is its integer from ``protocol/codes.py``."""

    code = "ecu_rejected.error"
    wire_code: int = 0


class CampaignError(OtalinkError):
    """The agent refuses a request of its callers (API, CLI)."""

    code = "campaign.error"

    def __init__(self, code: str | None = None, detail: str = "") -> None:
        super().__init__(detail, code=code)
        self.args = (f"{self.code}: {detail}" if detail else self.code,)


class Refused(CampaignError):
    """Understood but refused now: not confirmed, preconditions, policy, point of no return."""

    code = "campaign.refused"

    def __init__(
        self, code: str, detail: str = "", failing: list[FailingCheck] | None = None
    ) -> None:
        super().__init__(code, detail)
        self.failing: list[FailingCheck] = list(failing or [])

    def to_dict(self) -> ErrorBody:
        d = super().to_dict()
        d["failing"] = self.failing
        return d


class NotFound(CampaignError):
    """Nothing to act on (no update available, unknown ECU, unknown signal)."""

    code = "campaign.not_found"


class Conflict(CampaignError):
    """The request is illegal in the campaign's current state."""

    code = "campaign.conflict"

    def __init__(self, code: str = "campaign.conflict", detail: str = "", state: str = "") -> None:
        super().__init__(code, detail)
        self.state = state

    def to_dict(self) -> ErrorBody:
        d = super().to_dict()
        d["state"] = self.state
        return d


class ConfigError(OtalinkError):
    """A configuration file, key file or profile is missing, unreadable or invalid."""

    code = "config.invalid"


class UsageError(OtalinkError):
    """A caller's request or arguments are invalid (the API's 4xx, the CLI's usage errors)."""

    code = "usage.invalid"


class ToolError(OtalinkError):
    """An operator tool (repository, deployment, bundles) or a simulator failed."""

    code = "tool.error"


class Outcome(NamedTuple):
    """What an error means to the local API (HTTP status) and to the CLI (exit code)."""

    http: int
    exit: int


#: The one table: error family (class) or exact code -> HTTP status and CLI exit code.
OUTCOMES: Final[dict[type[OtalinkError] | str, Outcome]] = {
    # ---- families (the nearest class of the error that has a row) ----
    OtalinkError: Outcome(500, EXIT_FAILURE),
    TrustError: Outcome(502, EXIT_REFUSED),
    TransportError: Outcome(504, EXIT_LINK),
    DeviceRejected: Outcome(502, EXIT_REFUSED),
    CampaignError: Outcome(500, EXIT_FAILURE),
    Refused: Outcome(409, EXIT_REFUSED),
    Conflict: Outcome(409, EXIT_REFUSED),
    NotFound: Outcome(404, EXIT_NOT_FOUND),
    ConfigError: Outcome(503, EXIT_USAGE),
    UsageError: Outcome(422, EXIT_USAGE),
    ToolError: Outcome(500, EXIT_FAILURE),
    # ---- codes whose outcome is not their family's ----
    # the local API's own refusals (RFC 9457 problems with HTTP-level statuses)
    "api.invalid_body": Outcome(400, EXIT_USAGE),
    "api.not_found": Outcome(404, EXIT_NOT_FOUND),
    "api.method_not_allowed": Outcome(405, EXIT_USAGE),
    "api.header_required": Outcome(403, EXIT_REFUSED),
    "api.cross_site": Outcome(403, EXIT_REFUSED),
    "api.not_local": Outcome(421, EXIT_REFUSED),
    "api.internal": Outcome(500, EXIT_FAILURE),
    "api.unreachable": Outcome(504, EXIT_LINK),  # the client's: no answer from the agent
    # deployment: a board profile, a key file, the board's port, what the board refuses
    "deploy.bad_profile": Outcome(422, EXIT_USAGE),
    "config.bad_key": Outcome(422, EXIT_USAGE),  # a key file named on the command line
    "deploy.unknown_board": Outcome(404, EXIT_NOT_FOUND),
    "deploy.port_not_found": Outcome(504, EXIT_LINK),
    "deploy.board_busy": Outcome(504, EXIT_LINK),
    "deploy.hello_failed": Outcome(504, EXIT_LINK),
    "deploy.mpy_mismatch": Outcome(409, EXIT_REFUSED),
    "deploy.ecu_exists": Outcome(409, EXIT_REFUSED),
    "bundle.format": Outcome(422, EXIT_USAGE),
    "usage.not_found": Outcome(404, EXIT_NOT_FOUND),  # a file named on the command line
    "repo.not_found": Outcome(404, EXIT_NOT_FOUND),
}


def outcome(exc: BaseException) -> Outcome:
    """The HTTP status and exit code of ``exc`` (anything not an OtalinkError: 500 / 1)."""
    if isinstance(exc, OtalinkError):
        row = OUTCOMES.get(exc.code)
        if row is not None:
            return row
        for cls in type(exc).__mro__:
            row = OUTCOMES.get(cls) if issubclass(cls, OtalinkError) else None
            if row is not None:
                return row
    return OUTCOMES[OtalinkError]


def exit_code(exc: BaseException) -> int:
    """The ``otalink`` exit code of ``exc``."""
    return outcome(exc).exit


def http_status(exc: BaseException) -> int:
    """The local API's HTTP status for ``exc``."""
    return outcome(exc).http


def code_outcome(code: str, default: type[OtalinkError] = OtalinkError) -> Outcome:
    """The outcome of a bare ``code`` (a row for it, else ``default``'s family row)."""
    return OUTCOMES.get(code) or outcome(default(code=code))


def _exit_by_status() -> dict[int, int]:
    table: dict[int, int] = {}
    for row in OUTCOMES.values():
        if table.setdefault(row.http, row.exit) != row.exit:
            raise AssertionError(f"HTTP {row.http} stands for two exit codes in OUTCOMES")
    return table


_EXIT_BY_STATUS: Final = _exit_by_status()


def exit_for_status(status: int) -> int:
    """The exit code of an API answer with HTTP ``status`` (what a client sees of an error):
    the table's, since each status stands for one exit code; any other status is a failure."""
    return _EXIT_BY_STATUS.get(status, EXIT_FAILURE)
