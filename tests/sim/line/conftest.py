"""The ECU rig fixtures (real agent behind LineSim) shared with tests/gateway/ecu."""

from tests.gateway.ecu.conftest import rig, rig_factory

__all__ = ["rig", "rig_factory"]
