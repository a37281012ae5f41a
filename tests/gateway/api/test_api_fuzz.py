"""API fuzzing from the committed OpenAPI schema (schemathesis) against a real stack.

Every operation gets generated requests (valid and invalid); the checks: never a 5xx, every
error is ``application/problem+json`` with a stable ``code``, every answer's status code and
content type are documented and its body conforms to the operation's response schema (the
campaign's view models: ``response_schema_conformance``), and after each call the campaign is
in a known state with its workers alive.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from otalink.host.gateway.api.schema import SCHEMA_FILE
from otalink.host.sim.demo.stack import FAST, DemoStack
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

STATES = {
    "idle",
    "available",
    "downloading",
    "download_paused",
    "downloaded",
    "awaiting_confirmation",
    "scheduled",
    "installing",
    "installing_committed",
    "restarting",
    "verifying",
    "succeeded",
    "failed_rolled_back",
    "failed_needs_service",
}

schema = schemathesis.openapi.from_path(str(SCHEMA_FILE))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzz_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStack]:
    stack = DemoStack(tmp_path_factory.mktemp("fuzz"), FAST).start()
    yield stack
    stack.stop()


# The event stream is endless by design (tested in test_api.py); everything else is fuzzed.
@schema.exclude(path="/api/v1/events").parametrize()
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_fuzz_operation(case: Any, fuzz_stack: DemoStack) -> None:
    resp = case.call(base_url=fuzz_stack.url, timeout=30)
    assert resp.status_code < 500, f"{case.method} {case.path}: {resp.status_code} {resp.text}"
    if resp.status_code >= 400:
        ctype = resp.headers.get("content-type") or [""]
        ctype = ctype[0] if isinstance(ctype, list) else ctype
        assert ctype.startswith("application/problem+json"), resp.headers
        body = resp.json()
        assert isinstance(body.get("code"), str) and body["code"], body
        assert "Traceback" not in resp.text
    case.validate_response(resp, checks=CHECKS)
    with httpx.Client(base_url=fuzz_stack.url) as c:
        st = c.get("/api/v1/status").json()
    assert st["state"] in STATES
    assert fuzz_stack.agent.running()


def test_answers_that_do_not_match_the_schema_are_caught(fuzz_stack: DemoStack) -> None:
    """The response schema check is real: the agent's answer passes, the same answer with a
    member of the wrong type or a missing one does not."""
    case = schema["/api/v1/status"]["GET"].Case()
    real = case.call(base_url=fuzz_stack.url, timeout=30)
    case.validate_response(real, checks=CHECKS)
    request = httpx.Request("GET", fuzz_stack.url + "/api/v1/status")
    wrong_type = json.loads(real.text)
    wrong_type["download"]["bytes"] = "many"
    missing = json.loads(real.text)
    del missing["state"]
    for body, why in ((wrong_type, "'many' is not of type 'integer'"), (missing, "'state'")):
        fake = httpx.Response(200, json=body, request=request)
        fake.elapsed = timedelta(milliseconds=5)
        with pytest.raises(FailureGroup) as ei:
            case.validate_response(fake, checks=[response_schema_conformance])
        text = "\n".join(str(f) for f in ei.value.exceptions).replace('"', "'")
        assert "violates schema" in text and why in text, text
