"""The update server's shared, mutable settings (the test controls) and open connections."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

from otalink.host.tools.server.store import ReportStore

TIMEOUT_S = 60.0  # socket timeout, and the deadline of a request head


@dataclass
class ServerState:
    """Shared, mutable server settings (the test controls)."""

    root: Path
    reports: ReportStore
    test_controls: bool = False
    offline: bool = False
    rate_bps: int | None = None
    timeout_s: float = TIMEOUT_S
    lock: threading.Lock = field(default_factory=threading.Lock)
    connections: set[socket.socket] = field(default_factory=set)  # open client connections

    def drop_all(self, keep: socket.socket | None = None) -> None:
        """Cut every open client connection (keep-alive ones included) but ``keep``."""
        with self.lock:
            conns = [c for c in self.connections if c is not keep]
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
