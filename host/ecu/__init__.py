"""ECU client: session + windowed transfer over a serial link (``EcuClient``), shared by the
host agent, the fleet code, ``otalink flash`` and the benches.

See ``otalink.host.ecu.client`` for the public interface.
"""

from otalink.host.ecu.client import EcuClient
from otalink.host.ecu.errors import EcuError, EcuLinkError, EcuProtocolError, EcuRejected
from otalink.host.ecu.info import Caps, EcuInfo, SlotInfo, TransferState
from otalink.host.ecu.result import TransferResult
from otalink.host.ecu.transport import SerialTransport, Transport

__all__ = [
    "Caps",
    "EcuClient",
    "EcuError",
    "EcuInfo",
    "EcuLinkError",
    "EcuProtocolError",
    "EcuRejected",
    "SerialTransport",
    "SlotInfo",
    "TransferResult",
    "TransferState",
    "Transport",
]
