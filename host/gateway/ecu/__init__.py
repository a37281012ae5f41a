"""The ECU link of the gateway: one ``EcuClient`` per ECU line (the host agent, the fleet code,
``otalink flash`` and the benches use it), built from two parts:

    session.Session     HELLO / STATUS / signed commands / the application channel; requests
                        tied to their typed replies; one reader that routes unsolicited frames
                        (APP events) to subscribers
    uploader.Uploader   an image into the inactive slot: the one transfer engine
                        (otalink.protocol.transfer.TxWindow) driven over the session

and around them: wire (typed messages from protocol/wire.py SPECS), transport (pyserial),
policy (timeouts and retries), info (signed reports), commands (signing), segments (resumable
deflate), errors, result; fleet / line / state (the vehicle's ECUs, driven in parallel).

See ``otalink.host.gateway.ecu.client`` for the facade's interface.
"""

from otalink.host.gateway.ecu.client import EcuClient
from otalink.host.gateway.ecu.commands import DEV_COMMAND_SEED, dev_command_key, signed_command
from otalink.host.gateway.ecu.errors import (
    EcuDeferred,
    EcuError,
    EcuLinkError,
    EcuProtocolError,
    EcuRejected,
)
from otalink.host.gateway.ecu.info import AppInfo, Caps, EcuInfo, SlotInfo, TransferState
from otalink.host.gateway.ecu.policy import LinkPolicy
from otalink.host.gateway.ecu.result import TransferResult
from otalink.host.gateway.ecu.session import Session
from otalink.host.gateway.ecu.transport import SerialTransport, Transport
from otalink.host.gateway.ecu.uploader import ProbeResult, Uploader

__all__ = [
    "DEV_COMMAND_SEED",
    "AppInfo",
    "Caps",
    "EcuClient",
    "EcuDeferred",
    "EcuError",
    "EcuInfo",
    "EcuLinkError",
    "EcuProtocolError",
    "EcuRejected",
    "LinkPolicy",
    "ProbeResult",
    "SerialTransport",
    "Session",
    "SlotInfo",
    "TransferResult",
    "TransferState",
    "Transport",
    "Uploader",
    "dev_command_key",
    "signed_command",
]
