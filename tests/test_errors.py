"""The one error root: every host error family under OtalinkError, one code spelling, and the one
table from an error to the local API's HTTP status and the CLI's exit code."""

from __future__ import annotations

import re

import pytest
from otalink.host import errors
from otalink.host.errors import (
    EXIT_FAILURE,
    EXIT_LINK,
    EXIT_NOT_FOUND,
    EXIT_REFUSED,
    EXIT_USAGE,
    OUTCOMES,
    ConfigError,
    Conflict,
    DeviceRejected,
    NotFound,
    OtalinkError,
    Refused,
    TransportError,
    TrustError,
    exit_code,
    exit_for_status,
    http_status,
)
from otalink.host.gateway.api.client import ApiError
from otalink.host.gateway.api.problems import ApiProblem
from otalink.host.gateway.ecu import segments
from otalink.host.gateway.ecu.errors import EcuError, EcuLinkError, EcuProtocolError, EcuRejected
from otalink.host.gateway.ecu.fleet import FleetError
from otalink.host.gateway.update import errors as uerr
from otalink.host.keys import BadKeyError
from otalink.host.sim.demo.scenarios import ScenarioFailed
from otalink.host.sim.ecusim.bundle import BundleFormatError
from otalink.host.tools.deploy import errors as derr
from otalink.host.tools.repo.api import RepoError, ThresholdError
from otalink.protocol import codes

CODE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z0-9_]+$")


def _update_errors() -> list[uerr.UpdateError]:
    out: list[uerr.UpdateError] = []
    for cls in uerr.ERROR_CODES.values():
        if cls is uerr.HttpStatusError:
            out.append(uerr.HttpStatusError("x", 503))
        elif cls is uerr.SlowRetrievalError:
            out.append(uerr.SlowRetrievalError("x"))
        else:
            out.append(cls("x"))
    return out


def _deploy_errors() -> list[derr.DeployError]:
    classes = [c for c in vars(derr).values() if isinstance(c, type)]
    return [c("x") for c in classes if issubclass(c, derr.DeployError)]


def every_error() -> list[OtalinkError]:
    return [
        *_update_errors(),
        EcuRejected(codes.E_SIG_INVALID),
        EcuLinkError("no answer"),
        EcuProtocolError("bad reply"),
        Refused("campaign.point_of_no_return", "x"),
        Conflict("campaign.illegal_in_state", "x", "idle"),
        NotFound("campaign.no_update", "x"),
        ConfigError("x"),
        BadKeyError("x"),
        *_deploy_errors(),
        RepoError("x"),
        ThresholdError("x"),
        BundleFormatError("x"),
        segments.SegmentError("x"),
        ScenarioFailed("x"),
        FleetError("bms", "fleet.ecu_identity", "x"),
        ApiProblem("api.invalid_request", "x"),
        ApiError({"code": "campaign.no_update", "detail": "x"}, EXIT_NOT_FOUND),
    ]


@pytest.mark.parametrize("exc", every_error(), ids=lambda e: type(e).__name__)
def test_every_family_is_an_otalink_error_with_one_code_spelling(exc: OtalinkError) -> None:
    assert isinstance(exc, OtalinkError)
    assert CODE.match(exc.code), exc.code
    assert exc.to_dict()["code"] == exc.code


def test_an_ecu_out_of_memory_reads_as_such() -> None:
    # E_INTERNAL's detail 1 is a heap shortage on the ECU, not a bug: the text says so
    oom = EcuRejected(codes.E_INTERNAL, codes.INTERNAL_NO_MEMORY)
    assert "ran out of memory" in str(oom) and oom.detail == codes.INTERNAL_NO_MEMORY
    assert oom.code == "ecu_rejected.e_internal"
    bug = EcuRejected(codes.E_INTERNAL, 0)
    assert "memory" not in str(bug) and str(bug).startswith("E_INTERNAL (code 63")


def test_the_families_by_layer() -> None:
    # a slow link is a transport failure (the partial download is kept), never a trust one
    slow = uerr.SlowRetrievalError("x")
    assert isinstance(slow, TransportError) and not isinstance(slow, TrustError)
    assert exit_code(slow) == EXIT_LINK
    assert (
        isinstance(uerr.RollbackError("x"), TrustError) and exit_code(uerr.RollbackError("x")) == 3
    )
    # the ECU client's errors keep their own base and sit in the layer's family
    rejected = EcuRejected(codes.E_SIG_INVALID)
    assert isinstance(rejected, EcuError) and isinstance(rejected, DeviceRejected)
    assert (
        rejected.code == "ecu_rejected.e_sig_invalid" and rejected.wire_code == codes.E_SIG_INVALID
    )
    assert exit_code(rejected) == EXIT_REFUSED
    for link in (EcuLinkError("x"), EcuProtocolError("x")):
        assert isinstance(link, EcuError) and isinstance(link, TransportError)
        assert exit_code(link) == EXIT_LINK
    # a bad key file is a configuration problem, still a ValueError for value parsers
    bad = BadKeyError("x")
    assert isinstance(bad, ConfigError) and isinstance(bad, ValueError)
    assert bad.code == "config.bad_key" and exit_code(bad) == EXIT_USAGE


@pytest.mark.parametrize(
    ("exc", "http", "exit"),
    [
        (Refused("campaign.confirmation_required"), 409, EXIT_REFUSED),
        (Conflict("campaign.illegal_in_state"), 409, EXIT_REFUSED),
        (NotFound("campaign.no_schedule"), 404, EXIT_NOT_FOUND),
        (ConfigError("x"), 503, EXIT_USAGE),
        (ApiProblem("api.invalid_request", "x"), 422, EXIT_USAGE),
        (ApiProblem("api.invalid_body", "x"), 400, EXIT_USAGE),
        (ApiProblem("api.not_found", "x"), 404, EXIT_NOT_FOUND),
        (ApiProblem("api.method_not_allowed", "x"), 405, EXIT_USAGE),
        (ApiProblem("api.cross_site", "x"), 403, EXIT_REFUSED),
        (ApiProblem("api.not_local", "x"), 421, EXIT_REFUSED),
        (uerr.NeedsPermissionError("x"), 504, EXIT_LINK),
        (RepoError("x"), 500, EXIT_FAILURE),
        (RepoError("x", code="repo.not_found"), 404, EXIT_NOT_FOUND),
        (BundleFormatError("x"), 422, EXIT_USAGE),
        (ValueError("not ours"), 500, EXIT_FAILURE),
    ],
    ids=lambda v: v if isinstance(v, int) else type(v).__name__,
)
def test_the_one_table(exc: BaseException, http: int, exit: int) -> None:
    assert (http_status(exc), exit_code(exc)) == (http, exit)


def test_deploy_exit_codes_are_the_documented_ones() -> None:
    # docs/hil.md: the codes and exit codes of `otalink device ...` (unchanged by the error root)
    expected = {
        derr.DeployError: ("deploy.failed", EXIT_FAILURE),
        derr.ProfileError: ("deploy.bad_profile", EXIT_USAGE),
        derr.UnknownBoardError: ("deploy.unknown_board", EXIT_NOT_FOUND),
        derr.PortNotFoundError: ("deploy.port_not_found", EXIT_LINK),
        derr.BoardBusyError: ("deploy.board_busy", EXIT_LINK),
        derr.MpyMismatchError: ("deploy.mpy_mismatch", EXIT_REFUSED),
        derr.BoardExecError: ("deploy.board_exec", EXIT_FAILURE),
        derr.CompileError: ("deploy.compile_failed", EXIT_FAILURE),
        derr.HelloError: ("deploy.hello_failed", EXIT_LINK),
        derr.KeyFileError: ("config.bad_key", EXIT_USAGE),
        derr.EcuExistsError: ("deploy.ecu_exists", EXIT_REFUSED),
    }
    for cls, (code, exit) in expected.items():
        exc = cls("x")
        assert (exc.code, exc.exit_code, exc.to_dict()["exit"]) == (code, exit, exit), cls


def test_each_http_status_stands_for_one_exit_code() -> None:
    seen: dict[int, int] = {}
    for row in OUTCOMES.values():
        assert seen.setdefault(row.http, row.exit) == row.exit, row
    # what the API client makes of an answer's status
    assert exit_for_status(409) == EXIT_REFUSED and exit_for_status(404) == EXIT_NOT_FOUND
    assert exit_for_status(422) == EXIT_USAGE and exit_for_status(400) == EXIT_USAGE
    assert exit_for_status(418) == EXIT_FAILURE and exit_for_status(500) == EXIT_FAILURE


def test_code_rows_use_the_one_spelling() -> None:
    for key in OUTCOMES:
        if isinstance(key, str):
            assert CODE.match(key), key
        else:
            assert issubclass(key, OtalinkError) and CODE.match(key.code), key
    assert errors.code_outcome("api.unreachable").exit == EXIT_LINK
