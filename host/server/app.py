"""The embedded update server: static TUF repositories with HTTP Range + vehicle reports.

Layout under ``--root``: ``image/{metadata,targets}/...`` and ``director/VEHICLE/metadata/...``
(what ``RepoSet.publish`` writes). Endpoints:

* ``GET|HEAD /<path>`` — a file under the root. ``Range: bytes=a-b | a- | -n`` (one range) gets
  206 with ``Content-Range``; an unsatisfiable range gets 416 with ``Content-Range: bytes */SIZE``;
  several ranges are answered with the whole file (200), as RFC 9110 allows. ``If-Range`` with a
  validator that does not match the current ``ETag``/``Last-Modified`` also gets the whole file.
* ``POST /reports/VEHICLE`` — a vehicle version manifest, JSON or CBOR (``Content-Type:
  application/cbor``), at most 1 MiB, stored in SQLite; ``GET /reports/VEHICLE`` lists them
  (newest first, JSON; CBOR bodies rendered with bytes as hex); ``GET /reports`` counts per vehicle.
* ``GET /healthz``.
* With ``test_controls``: ``POST /_control`` ``{"offline": bool, "rate_bps": int|null}`` — while
  offline the server closes every repository connection and report upload without answering
  (the "no connection" scenario of the demo; ``GET /reports`` stays up for operators);
  ``rate_bps`` throttles file bodies.

Built on the standard library's ``ThreadingHTTPServer`` (why: docs/host.md, "Update server").

A client that drops its connection (a cancelled download, a Range resume, a lost link) is normal:
it is logged as one line at DEBUG on the ``otalink.host.server`` logger, never as a traceback.
Any other error in a request still prints its traceback to stderr.
"""

from __future__ import annotations

import email.utils
import errno
import json
import logging
import mimetypes
import os
import re
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import cbor2

MAX_REPORT = 1 << 20
CHUNK = 64 * 1024
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_VEHICLE = re.compile(r"[A-Za-z0-9._-]{1,64}")
# socket errors that only mean "the peer went away" (ECONNRESET/EPIPE/... are ConnectionError)
_GONE_ERRNOS = frozenset({errno.ENOTCONN, errno.ESHUTDOWN, errno.ETIMEDOUT})

log = logging.getLogger("otalink.host.server")


def is_disconnect(exc: BaseException | None) -> bool:
    """True if ``exc`` only says the client closed, reset or timed out its connection."""
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    return isinstance(exc, OSError) and exc.errno in _GONE_ERRNOS


def parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """(first, last) of a single byte range; ``None`` to serve the whole file; ``"416"`` if
    unsatisfiable."""
    header = header.strip()
    if "," in header:
        return None  # several ranges: whole file
    m = _RANGE.fullmatch(header)
    if not m or (not m.group(1) and not m.group(2)):
        return None  # malformed: ignore the header
    if not m.group(1):  # suffix range: last n bytes
        n = int(m.group(2))
        if n == 0:
            return "416"
        return (max(0, size - n), size - 1) if size else "416"
    first = int(m.group(1))
    if first >= size:
        return "416"
    last = int(m.group(2)) if m.group(2) else size - 1
    if last < first:
        return None
    return first, min(last, size - 1)


def _peer(addr: Any) -> str:
    """``host:port`` of a client address (IPv4 or IPv6 tuple)."""
    return ":".join(str(x) for x in tuple(addr)[:2])


class ReportStore:
    """Vehicle reports in SQLite (one connection per call: the server is threaded)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS reports (id INTEGER PRIMARY KEY, vehicle TEXT NOT NULL,"
                " received REAL NOT NULL, content_type TEXT NOT NULL, body BLOB NOT NULL)"
            )
            db.execute("CREATE INDEX IF NOT EXISTS reports_vehicle ON reports(vehicle, id)")

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10)
        try:
            with db:
                yield db
        finally:
            db.close()

    def add(self, vehicle: str, content_type: str, body: bytes) -> int:
        with self._db() as db:
            cur = db.execute(
                "INSERT INTO reports (vehicle, received, content_type, body) VALUES (?,?,?,?)",
                (vehicle, time.time(), content_type, body),
            )
            return int(cur.lastrowid or 0)

    def list(self, vehicle: str, limit: int = 50) -> list[dict[str, Any]]:
        with self._db() as db:
            rows = db.execute(
                "SELECT id, received, content_type, body FROM reports WHERE vehicle=? "
                "ORDER BY id DESC LIMIT ?",
                (vehicle, limit),
            ).fetchall()
        return [
            {"id": r[0], "received": r[1], "content_type": r[2], "report": _decode(r[2], r[3])}
            for r in rows
        ]

    def counts(self) -> dict[str, int]:
        with self._db() as db:
            rows = db.execute("SELECT vehicle, COUNT(*) FROM reports GROUP BY vehicle").fetchall()
        return {str(v): int(n) for v, n in rows}


def _jsonable(x: Any) -> Any:
    if isinstance(x, bytes | bytearray):
        return bytes(x).hex()
    if isinstance(x, list | tuple):
        return [_jsonable(i) for i in x]
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    return x


def _decode(content_type: str, body: bytes) -> Any:
    if content_type == "application/cbor":
        return _jsonable(cbor2.loads(body))
    return json.loads(body)


@dataclass
class ServerState:
    """Shared, mutable server settings (the test controls)."""

    root: Path
    reports: ReportStore
    test_controls: bool = False
    offline: bool = False
    rate_bps: int | None = None
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


class Handler(BaseHTTPRequestHandler):
    """One request; ``server.state`` holds the configuration."""

    server_version = "otalink-server/0.1"
    protocol_version = "HTTP/1.1"

    @property
    def state(self) -> ServerState:
        return self.server.state  # type: ignore[attr-defined,no-any-return]

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without this, Nagle + delayed ACK add
        # ~40 ms to every small response
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.state.lock:
            self.state.connections.add(self.connection)

    def finish(self) -> None:
        with self.state.lock:
            self.state.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        if os.environ.get("OTALINK_SERVER_LOG"):
            super().log_message(format, *args)

    # ---- helpers --------------------------------------------------------------------------------
    def _send_json(self, status: int, obj: Any) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, msg: str) -> None:
        self._send_json(status, {"error": msg})

    def _drop(self) -> None:
        """Simulated "no connection": close without a response."""
        self.close_connection = True
        try:
            self.connection.shutdown(2)
        except OSError:
            pass

    def _file(self, rel: str) -> Path | None:
        parts = [p for p in unquote(rel).split("/") if p]
        if not parts or any(p in (".", "..") or p.startswith(".") for p in parts):
            return None
        p = self.state.root.joinpath(*parts)
        return p if p.is_file() else None

    # ---- GET / HEAD -----------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/healthz":
            self._send_json(200, {"ok": True})
            return
        if path == "/reports":
            self._send_json(200, self.state.reports.counts())
            return
        if path.startswith("/reports/"):
            vehicle = path.removeprefix("/reports/")
            if not _VEHICLE.fullmatch(vehicle):
                self._error(400, "bad vehicle id")
                return
            self._send_json(200, self.state.reports.list(vehicle))
            return
        if self.state.offline:
            self._drop()
            return
        f = self._file(path)
        if f is None:
            self._error(404, "not found")
            return
        self._serve_file(f)

    def _serve_file(self, f: Path) -> None:
        st = f.stat()
        size = st.st_size
        etag = f'"{size:x}-{st.st_mtime_ns:x}"'
        last_mod = email.utils.formatdate(st.st_mtime, usegmt=True)
        rng: tuple[int, int] | str | None = None
        hdr = self.headers.get("Range")
        if hdr:
            if_range = self.headers.get("If-Range")
            if if_range is None or if_range.strip() in (etag, last_mod):
                rng = parse_range(hdr, size)
        if rng == "416":
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if isinstance(rng, tuple):
            first, last = rng
            self.send_response(HTTPStatus.PARTIAL_CONTENT)
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        else:
            first, last = 0, size - 1
            self.send_response(HTTPStatus.OK)
        ctype = (
            "application/json"
            if f.suffix == ".json"
            else (mimetypes.guess_type(f.name)[0] or "application/octet-stream")
        )
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(last - first + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", last_mod)
        self.send_header(
            "Cache-Control",
            "no-cache" if f.name in ("timestamp.json", "root.json") else "max-age=300",
        )
        self.end_headers()
        if self.command == "HEAD":
            return
        self._copy(f, first, last - first + 1)

    def _copy(self, f: Path, start: int, count: int) -> None:
        rate = self.state.rate_bps
        chunk = CHUNK if not rate else max(256, min(CHUNK, rate // 20))
        t0 = time.monotonic()
        sent = 0
        try:
            with open(f, "rb") as fh:
                fh.seek(start)
                while sent < count:
                    if self.state.offline:
                        self._drop()
                        return
                    data = fh.read(min(chunk, count - sent))
                    if not data:
                        break
                    self.wfile.write(data)
                    sent += len(data)
                    rate = self.state.rate_bps
                    if rate:
                        ahead = sent / rate - (time.monotonic() - t0)
                        if ahead > 0:
                            time.sleep(ahead)
        except OSError as exc:
            if not is_disconnect(exc):
                raise
            self.close_connection = True
            log.debug(
                "client %s dropped %s after %d of %d bytes (%s)",
                _peer(self.client_address),
                self.path,
                sent,
                count,
                type(exc).__name__,
            )

    # ---- POST -----------------------------------------------------------------------------------
    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit() or int(length) > MAX_REPORT:
            self.close_connection = True
            self._error(
                413 if length and length.isdigit() else 411, "body length required, <= 1 MiB"
            )
            return
        body = self.rfile.read(int(length))
        if path == "/_control" and self.state.test_controls:
            try:
                ctl = json.loads(body or b"{}")
            except ValueError:
                self._error(400, "bad JSON")
                return
            with self.state.lock:
                if "offline" in ctl:
                    self.state.offline = bool(ctl["offline"])
                if "rate_bps" in ctl:
                    self.state.rate_bps = int(ctl["rate_bps"]) if ctl["rate_bps"] else None
            self._send_json(200, {"offline": self.state.offline, "rate_bps": self.state.rate_bps})
            if self.state.offline:
                self.state.drop_all(keep=self.connection)
            return
        if not path.startswith("/reports/"):
            self._error(404, "not found")
            return
        if self.state.offline:  # a vehicle without a link cannot report either
            self._drop()
            return
        vehicle = path.removeprefix("/reports/")
        if not _VEHICLE.fullmatch(vehicle):
            self._error(400, "bad vehicle id")
            return
        ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
        if ctype not in ("application/json", "application/cbor"):
            self._error(415, "JSON or CBOR")
            return
        try:
            _decode(ctype, body)
        except Exception:
            self._error(400, "body does not parse")
            return
        rid = self.state.reports.add(vehicle, ctype, body)
        self._send_json(201, {"id": rid})


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
                "client %s disconnected (%s: %s)", _peer(client_address), type(exc).__name__, exc
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
) -> UpdateServer:
    """Bind (loopback by default) without starting."""
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    db = Path(db_path) if db_path else root / ".reports.sqlite"  # dot files are never served
    state = ServerState(
        root=root, reports=ReportStore(db), test_controls=test_controls, rate_bps=rate_bps
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
) -> ServerHandle:
    """Start the server in a daemon thread; ``handle.url`` is its base URL."""
    srv = make_server(
        root, host, port, db_path=db_path, rate_bps=rate_bps, test_controls=test_controls
    )
    t = threading.Thread(
        target=srv.serve_forever, kwargs={"poll_interval": 0.05}, name="otalink-server", daemon=True
    )
    t.start()
    return ServerHandle(srv, t)
