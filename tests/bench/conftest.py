"""Fixtures of the bench tests: the ECU rig (real agent behind LineSim) from tests/gateway/ecu."""

from tests.gateway.ecu.conftest import rig, rig_factory

__all__ = ["rig", "rig_factory"]
