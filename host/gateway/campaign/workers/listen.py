"""The listener: reads each ECU line for its application's events while nobody else uses it.

An ECU's application publishes events on the application channel at any time (APP with id 0:
the BMS's state of charge, a body controller's door change); they are read by whoever reads the
line. During a request or a transfer that is the request's own reader; in between, this worker
pumps each open, idle line for a short while (``Line.listen``), so the inventory's newest event
per channel (``Line.app_events``) stays current. A line in use is skipped, never waited for.
"""

from __future__ import annotations

import threading

from otalink.host.gateway.ecu import fleet as fl

LISTEN_S = 0.2  # one line read for this long per round
PAUSE_S = 0.05  # between rounds (a round where every line was busy costs no CPU)


class Listener:
    """The event listener (``run`` in its own thread)."""

    def __init__(self, fleet: fl.Fleet) -> None:
        self._fleet = fleet

    def run(self, stop: threading.Event) -> None:
        """Listen on every line in turn until ``stop``."""
        while not stop.is_set():
            for line in list(self._fleet.lines.values()):
                if stop.is_set():
                    return
                line.listen(LISTEN_S)
            stop.wait(PAUSE_S)
