"""The vehicle's link as the campaign sees it: which network, and may the download use it.

A metered (cellular) link needs the driver's permission (persisted in the record; the policy's
default until the driver chooses). ``gate`` turns "no usable link" into the paused download
the screen explains (``no_connection`` / ``cellular_not_allowed``); the ticker leaves it by
itself when the link allows it again.
"""

from __future__ import annotations

from otalink.host.gateway.campaign import preconditions as pre
from otalink.host.gateway.campaign.machine import Machine
from otalink.host.gateway.campaign.table import Ev
from otalink.host.gateway.vehicle.signals import SignalSource


class Connectivity:
    """The network now and the driver's permission for a metered link."""

    def __init__(self, signals: SignalSource, machine: Machine, cellular_default: bool) -> None:
        self._signals = signals
        self._machine = machine
        self._default = cellular_default

    def network(self) -> pre.Network:
        """``wifi``, ``cellular`` or ``none``."""
        return pre.network(self._signals)

    def cellular_allowed(self) -> bool:
        """The driver's permission to download over a metered link."""
        chosen = self._machine.record().cellular_allowed
        return self._default if chosen is None else chosen

    def blocked(self) -> str | None:
        """Why a download cannot run now (``no_connection`` / ``cellular_not_allowed``)."""
        net = self.network()
        if net == "none":
            return "no_connection"
        if net == "cellular" and not self.cellular_allowed():
            return "cellular_not_allowed"
        return None

    def gate(self) -> None:
        """Straight to download_paused(no_connection / cellular_not_allowed) when offline."""
        why = self.blocked()
        if why is not None:
            ev = Ev.CONNECTION_LOST if why == "no_connection" else Ev.METERED_BLOCKED
            self._machine.try_fire(ev, why, note={})
