"""Line simulator: paced pseudo-terminal pairs with seedable fault injection.

``LineSim`` (see ``otalink.host.sim.line.sim``) and ``FaultConfig``
(``otalink.host.sim.line.faults``).
"""

from otalink.host.sim.line.faults import FaultConfig, FaultInjector
from otalink.host.sim.line.sim import LineSim

__all__ = ["FaultConfig", "FaultInjector", "LineSim"]
