"""The ECU rig fixtures (real agent behind LineSim) shared with tests/ecu."""

from tests.ecu.conftest import rig, rig_factory

__all__ = ["rig", "rig_factory"]
