"""Line simulator: paced pseudo-terminal pairs with seedable fault injection.

``LineSim`` (see ``otalink.host.line.sim``) and ``FaultConfig`` (``otalink.host.line.faults``).
"""

from otalink.host.line.faults import FaultConfig, FaultInjector
from otalink.host.line.sim import LineSim

__all__ = ["FaultConfig", "FaultInjector", "LineSim"]
