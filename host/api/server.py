"""Run the local API (uvicorn) on a loopback address only.

``serve(agent, host, port)`` blocks (``otalink agent`` calls it). ``ApiServer`` runs the same
app in a background thread for the demo and tests; with ``port=0`` the OS picks a free port and
``ApiServer.url`` tells which.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from typing import Any

import uvicorn
from otalink.host.api.app import AgentLike, create_app

DEFAULT_PORT = 8765  # AgentConfig.api_port default


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


def _config(agent: AgentLike, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(agent),
        host=host,
        port=port,
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

    def __init__(self, agent: AgentLike, host: str = "127.0.0.1", port: int = 0) -> None:
        check_loopback(host)
        self._sock = socket.socket(
            socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM
        )
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host = host
        self.port: int = self._sock.getsockname()[1]
        self._server = uvicorn.Server(_config(agent, host, self.port))
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
