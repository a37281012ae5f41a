"""Run the local API (uvicorn) on a loopback address only.

``serve(agent, host, port)`` blocks (``otalink agent`` calls it). ``ApiServer`` runs the same
app in a background thread for the demo and tests; with ``port=0`` the OS picks a free port and
``ApiServer.url`` tells which.

uvicorn closes idle keep-alive connections, but waits forever for a request head or body that
never completes; with ``limit_concurrency`` a few such connections would lock the screen out.
Our h11 protocol gives every request ``request_timeout_s`` to arrive in full, from the moment
the server waits for it (a response, such as the event stream, is never cut).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
import time
from typing import Any

import h11
import uvicorn
from otalink.host.gateway.api.app import AgentLike, create_app
from uvicorn.protocols.http.h11_impl import H11Protocol

DEFAULT_PORT = 8765  # AgentConfig.api_port default
REQUEST_TIMEOUT_S = 10.0  # a local client sends its request at once


class DeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for receiving each whole request."""

    request_timeout_s = REQUEST_TIMEOUT_S
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state not in (h11.IDLE, h11.SEND_BODY):
            self._disarm()  # the request is complete (or the connection failed)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.request_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing():
            self.transport.close()


def _protocol(request_timeout_s: float) -> type[H11Protocol]:
    return type(
        "DeadlineH11Protocol", (DeadlineH11Protocol,), {"request_timeout_s": request_timeout_s}
    )


class NotLoopback(ValueError):
    """The local API only listens on loopback addresses."""


def check_loopback(host: str) -> None:
    """Raise ``NotLoopback`` unless ``host`` is a loopback address or ``localhost``."""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise NotLoopback(f"the local API listens on loopback only, not {host!r}")


def _config(
    agent: AgentLike, host: str, port: int, request_timeout_s: float = REQUEST_TIMEOUT_S
) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(agent),
        host=host,
        port=port,
        http=_protocol(request_timeout_s),
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
        limit_concurrency=64,
    )


def serve(agent: AgentLike, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
    """Serve the API + screen for ``agent`` until interrupted (blocking)."""
    check_loopback(host)
    uvicorn.Server(_config(agent, host, port)).run()


class ApiServer:
    """The API in a daemon thread: ``start()`` returns once it accepts connections."""

    def __init__(
        self,
        agent: AgentLike,
        host: str = "127.0.0.1",
        port: int = 0,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        check_loopback(host)
        self._sock = socket.socket(
            socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM
        )
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host = host
        self.port: int = self._sock.getsockname()[1]
        self._server = uvicorn.Server(_config(agent, host, self.port, request_timeout_s))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 10.0) -> ApiServer:
        """Start serving; wait until uvicorn is up."""
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._sock]},
            daemon=True,
            name="otalink-api",
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the local API did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop serving (open event streams are closed)."""
        self._server.should_exit = True
        self._server.force_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._sock.close()

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
