"""``otalink demo --scenario NAME``: each scenario plays headless and exits 0 only if it ended
as it should (and 1 when the system does something else)."""

from __future__ import annotations

import json

import pytest
from otalink.host.cli import main
from otalink.host.sim.demo.scenarios import SCENARIOS, play

from tests.sim.demo.conftest import StackFactory


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_exits_0(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["demo", "--scenario", name, "--fast", "--json"])
    out = capsys.readouterr().out
    result = json.loads(out.splitlines()[-1])
    assert code == 0, "\n".join(result["log"])
    assert result == {"scenario": name, "ok": True, "log": result["log"]}
    assert result["log"][-1] == "OK"


def test_scenario_that_does_not_happen_fails(make_stack: StackFactory) -> None:
    """No ECU fails its self-test here, so the rollback scenario must report failure."""
    stack = make_stack()
    ok, log = play("failed-self-test-rollback", stack)
    assert not ok
    assert log[-1].startswith("FAILED: expected failed_rolled_back, got succeeded")


def test_unknown_scenario_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--scenario", "nope"]) == 2
    assert "unknown scenario" in capsys.readouterr().out
