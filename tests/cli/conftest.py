"""Fixtures of the CLI tests: demo stacks (tests/sim/demo) and ECU rigs (tests/gateway/ecu)."""

from tests.gateway.ecu.conftest import rig, rig_factory
from tests.sim.demo.conftest import make_stack, shared_stack

__all__ = ["make_stack", "rig", "rig_factory", "shared_stack"]
