"""Client connections of the update server: telling a vanished peer from an error, and reads
with a deadline (a request head or body trickled one byte at a time still ends)."""

from __future__ import annotations

import errno
import socket
import time
from typing import Any

# socket errors that only mean "the peer went away" (ECONNRESET/EPIPE/... are ConnectionError)
_GONE_ERRNOS = frozenset({errno.ENOTCONN, errno.ESHUTDOWN, errno.ETIMEDOUT})


def is_disconnect(exc: BaseException | None) -> bool:
    """True if ``exc`` only says the client closed, reset or timed out its connection."""
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    return isinstance(exc, OSError) and exc.errno in _GONE_ERRNOS


def peer(addr: Any) -> str:
    """``host:port`` of a client address (IPv4 or IPv6 tuple)."""
    return ":".join(str(x) for x in tuple(addr)[:2])


class DeadlineIO(socket.SocketIO):
    """The socket's read side with a deadline: every read waits at most the socket timeout and
    never past ``deadline`` (a head or body trickled one byte at a time still ends)."""

    def __init__(self, sock: socket.socket, timeout_s: float) -> None:
        super().__init__(sock, "rb")
        self.timeout_s = timeout_s
        self.deadline: float | None = None

    def readinto(self, b: Any) -> int | None:
        sock: socket.socket = self._sock  # type: ignore[attr-defined]
        if self.deadline is None:
            return super().readinto(b)
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("request deadline passed")
        sock.settimeout(min(self.timeout_s, left))
        try:
            return super().readinto(b)
        finally:
            sock.settimeout(self.timeout_s)  # writes keep the plain socket timeout
