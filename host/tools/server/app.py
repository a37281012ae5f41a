"""The embedded update server: static TUF repositories with HTTP Range + vehicle reports.

Layout under ``--root``: ``image/{metadata,targets}/...`` and ``director/VEHICLE/metadata/...``
(what ``RepoSet.publish`` writes). Endpoints:

* ``GET|HEAD /<path>`` — a file under the root. ``Range: bytes=a-b | a- | -n`` (one range) gets
  206 with ``Content-Range``; an unsatisfiable range gets 416 with ``Content-Range: bytes */SIZE``;
  several ranges are answered with the whole file (200), as RFC 9110 allows. ``If-Range`` with a
  validator that does not match the current ``ETag``/``Last-Modified`` also gets the whole file.
  Dot files, ``..`` and symlinks that lead out of the root (or to a dot file) are never served.
* ``POST /reports/VEHICLE`` — a vehicle version manifest, JSON or CBOR (``Content-Type:
  application/cbor``), at most 1 MiB, stored in SQLite as the exact bytes received — only if it
  renders faithfully as JSON (``otalink.host.tools.server.reports``); ``GET /reports/VEHICLE`` lists
  them (newest first, JSON; CBOR bodies rendered with bytes as hex; a stored row that does not
  render is listed with an ``error`` and its raw body in base64); ``GET /reports`` counts per
  vehicle.
* ``GET /healthz``.
* With ``test_controls``: ``POST /_control`` ``{"offline": bool, "rate_bps": int|null}`` — while
  offline the server closes every repository connection and report upload without answering
  (the "no connection" scenario of the demo; ``GET /reports`` stays up for operators);
  ``rate_bps`` throttles file bodies.

Every error is ``application/problem+json`` (RFC 9457) with a stable ``code`` (``not_found``,
``bad_vehicle``, ``length_required``, ``bad_content_length``, ``report_too_large``,
``unsupported_media_type``, ``report_invalid`` + ``reason``, ``bad_control``, ``timeout``,
``bad_request``, ``internal``...). Numbers from the network are ASCII digits only, never passed
to ``int()`` unbounded. Every connection has a socket timeout (``timeout_s``), and a request
head or report body must arrive within a deadline, so a stalled or trickling client never holds
a thread for long.

Built on the standard library's ``ThreadingHTTPServer`` (why: docs/host.md, "Update server").

The parts: ``handler.py`` (one request), ``ranges.py`` (Range and ASCII numbers),
``problems.py`` (the problem documents), ``connection.py`` (disconnects, read deadlines),
``store.py`` (the SQLite report store), ``reports.py`` (strict report decoding), ``state.py``
(the shared settings); this module binds, starts and stops the server.

A client that drops its connection (a cancelled download, a Range resume, a lost link) is normal:
it is logged as one line at DEBUG on the ``otalink.host.tools.server`` logger, never as a traceback.
Any other error in a request is answered ``500 internal`` (if nothing was sent yet) and still
prints its traceback to stderr.
"""

from __future__ import annotations

import logging
import sys
import threading
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from otalink.host.tools.server.connection import is_disconnect, peer
from otalink.host.tools.server.handler import Handler
from otalink.host.tools.server.state import TIMEOUT_S, ServerState
from otalink.host.tools.server.store import ReportStore

log = logging.getLogger("otalink.host.tools.server")


class UpdateServer(ThreadingHTTPServer):
    """ThreadingHTTPServer carrying the shared state."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], state: ServerState) -> None:
        self.state = state
        super().__init__(addr, Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that vanish mid-request are normal on vehicle links: one DEBUG line, no
        traceback. Anything else keeps the standard traceback on stderr."""
        exc = sys.exc_info()[1]
        if is_disconnect(exc):
            log.debug(
                "client %s disconnected (%s: %s)", peer(client_address), type(exc).__name__, exc
            )
            return
        super().handle_error(request, client_address)


@dataclass
class ServerHandle:
    """A running server (background thread)."""

    server: UpdateServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        host = self.server.server_address[0]
        host = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://{host}:{self.port}"

    @property
    def state(self) -> ServerState:
        return self.server.state

    def set_offline(self, offline: bool) -> None:
        """Simulate a lost link: refuse repository traffic and cut open connections."""
        self.server.state.offline = offline
        if offline:
            self.server.state.drop_all()

    def set_rate(self, rate_bps: int | None) -> None:
        self.server.state.rate_bps = rate_bps

    def stop(self) -> None:
        """Stop accepting, cut open (keep-alive) connections, close the socket."""
        self.server.shutdown()
        self.server.state.drop_all()
        self.server.server_close()
        self.thread.join(5)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def make_server(
    root: Path | str,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    db_path: Path | str | None = None,
    rate_bps: int | None = None,
    test_controls: bool = False,
    timeout_s: float = TIMEOUT_S,
) -> UpdateServer:
    """Bind (loopback by default) without starting. ``timeout_s``: socket timeout of every
    connection, and the deadline of a request head (a report body gets more, by its size)."""
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    db = Path(db_path) if db_path else root / ".reports.sqlite"  # dot files are never served
    state = ServerState(
        root=root,
        reports=ReportStore(db),
        test_controls=test_controls,
        rate_bps=rate_bps,
        timeout_s=timeout_s,
    )
    return UpdateServer((host, port), state)


def start_server(
    root: Path | str,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    db_path: Path | str | None = None,
    rate_bps: int | None = None,
    test_controls: bool = False,
    timeout_s: float = TIMEOUT_S,
) -> ServerHandle:
    """Start the server in a daemon thread; ``handle.url`` is its base URL."""
    srv = make_server(
        root,
        host,
        port,
        db_path=db_path,
        rate_bps=rate_bps,
        test_controls=test_controls,
        timeout_s=timeout_s,
    )
    t = threading.Thread(
        target=srv.serve_forever, kwargs={"poll_interval": 0.05}, name="otalink-server", daemon=True
    )
    t.start()
    return ServerHandle(srv, t)
