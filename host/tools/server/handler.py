"""One HTTP request of the update server: files with Range, report uploads, the test controls.

What each endpoint answers is in ``otalink.host.tools.server.app``. Every refusal is a problem
(``problems.py``); a client that drops its connection is one DEBUG line on the
``otalink.host.tools.server`` logger; anything else is ``500 internal`` plus its traceback on
stderr.
"""

from __future__ import annotations

import email.utils
import io
import json
import logging
import mimetypes
import os
import re
import socket
import sys
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from otalink.host.tools.server.connection import DeadlineIO, is_disconnect, peer
from otalink.host.tools.server.problems import CODES, PROBLEM_TYPE, Refused, problem_body
from otalink.host.tools.server.ranges import ascii_uint, parse_range
from otalink.host.tools.server.reports import CBOR_TYPES, JSON_TYPES, ReportInvalid, render
from otalink.host.tools.server.state import ServerState

MAX_REPORT = 1 << 20
CHUNK = 64 * 1024
MIN_UPLOAD_BPS = 1024  # a report body gets TIMEOUT_S + length / MIN_UPLOAD_BPS to arrive
_VEHICLE = re.compile(r"[A-Za-z0-9._-]{1,64}", re.ASCII)

log = logging.getLogger("otalink.host.tools.server")


class Handler(BaseHTTPRequestHandler):
    """One request; ``server.state`` holds the configuration."""

    server_version = "otalink-server/0.1"
    protocol_version = "HTTP/1.1"
    _responded = False

    @property
    def state(self) -> ServerState:
        return self.server.state  # type: ignore[attr-defined,no-any-return]

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without this, Nagle + delayed ACK add
        # ~40 ms to every small response
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connection.settimeout(self.state.timeout_s)
        self.rfile.close()
        self._rio = DeadlineIO(self.connection, self.state.timeout_s)
        self.rfile = io.BufferedReader(self._rio)
        with self.state.lock:
            self.state.connections.add(self.connection)

    def finish(self) -> None:
        with self.state.lock:
            self.state.connections.discard(self.connection)
        super().finish()

    def handle_one_request(self) -> None:
        # waiting for the next request and reading its head share one deadline
        self._rio.deadline = time.monotonic() + self.state.timeout_s
        self._responded = False
        super().handle_one_request()

    def log_message(self, format: str, *args: Any) -> None:
        if os.environ.get("OTALINK_SERVER_LOG"):
            super().log_message(format, *args)

    # ---- helpers --------------------------------------------------------------------------------
    def send_response(self, code: int, message: str | None = None) -> None:
        self._responded = True
        super().send_response(code, message)

    def _send_body(self, status: int, ctype: str, body: bytes, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, obj: Any) -> None:
        self._send_body(status, "application/json", json.dumps(obj, allow_nan=False).encode())

    def _problem(
        self, status: int, code: str, detail: str, close: bool = False, **extra: Any
    ) -> None:
        self._send_body(status, PROBLEM_TYPE, problem_body(status, code, detail, **extra), close)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's own refusals (bad request line, 414, 431, 501...) as
        problem+json too."""
        self.log_error("code %d, message %s", code, message)
        self._problem(
            code,
            CODES.get(code, "http_error"),
            message or explain or HTTPStatus(code).phrase,
            close=True,
        )

    def _guarded(self, handler: Any) -> None:
        """Run ``handler``: ``Refused`` becomes its problem; a disconnect propagates (one DEBUG
        line); anything else is a 500 ``internal`` answer plus the traceback on stderr."""
        try:
            handler()
        except Refused as exc:
            self._problem(exc.status, exc.code, exc.detail, close=True, **exc.extra)
        except Exception as exc:
            if is_disconnect(exc):
                raise
            self.close_connection = True
            sys.stderr.write(f"error while serving {self.command} {self.path[:200]!r}:\n")
            traceback.print_exc(file=sys.stderr)
            if not self._responded:
                self._problem(500, "internal", "the server hit an unexpected error", close=True)

    def _drop(self) -> None:
        """Simulated "no connection": close without a response."""
        self.close_connection = True
        try:
            self.connection.shutdown(2)
        except OSError:
            pass

    def _file(self, rel: str) -> Path | None:
        """The file ``rel`` names under the root: never a dot file, never ``..``, never through
        a symlink that leads out of the root (or to a dot file)."""
        root = self.state.root
        parts = [p for p in unquote(rel).split("/") if p]
        if not parts or any(p in (".", "..") or p.startswith(".") or "\0" in p for p in parts):
            return None
        try:
            real = root.joinpath(*parts).resolve(strict=True)
            inside = real.relative_to(root)
            if any(p.startswith(".") for p in inside.parts) or not real.is_file():
                return None
        except (OSError, ValueError, RuntimeError):  # missing, outside the root, loops, NUL
            return None
        return real

    # ---- GET / HEAD -----------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self._guarded(self._get)

    def do_GET(self) -> None:
        self._guarded(self._get)

    def _get(self) -> None:
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
                raise Refused(400, "bad_vehicle", "vehicle ids are 1-64 of A-Z a-z 0-9 . _ -")
            rows = self.state.reports.listing_rows(vehicle)
            self._send_body(200, "application/json", b"[" + b",".join(rows) + b"]")
            return
        if self.state.offline:
            self._drop()
            return
        f = self._file(path)
        if f is None:
            self._problem(404, "not_found", "no such file")
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
                peer(self.client_address),
                self.path,
                sent,
                count,
                type(exc).__name__,
            )

    # ---- POST -----------------------------------------------------------------------------------
    def do_POST(self) -> None:
        self._guarded(self._post)

    def _body_length(self) -> int:
        """The request's Content-Length: one ASCII number, at most ``MAX_REPORT``."""
        if self.headers.get("Transfer-Encoding") is not None:
            raise Refused(411, "length_required", "send the body with a Content-Length")
        values = {v.strip() for v in self.headers.get_all("Content-Length") or []}
        if not values:
            raise Refused(411, "length_required", "a Content-Length is required")
        n = ascii_uint(values.pop()) if len(values) == 1 else None
        if n is None:
            raise Refused(400, "bad_content_length", "Content-Length must be one ASCII number")
        if n > MAX_REPORT:
            raise Refused(413, "report_too_large", f"at most {MAX_REPORT} bytes")
        return n

    def _read_body(self, n: int) -> bytes:
        """Exactly ``n`` bytes, within ``timeout_s + n / MIN_UPLOAD_BPS`` (else 408)."""
        self._rio.deadline = time.monotonic() + self.state.timeout_s + n / MIN_UPLOAD_BPS
        chunks: list[bytes] = []
        got = 0
        try:
            while got < n:
                chunk = self.rfile.read1(min(CHUNK, n - got))
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
        except TimeoutError:
            raise Refused(
                408, "timeout", f"the body did not arrive in time ({got} of {n} bytes)"
            ) from None
        if got < n:
            raise Refused(400, "bad_request", f"the body ended after {got} of {n} bytes")
        return b"".join(chunks)

    def _post(self) -> None:
        path = urlsplit(self.path).path
        body = self._read_body(self._body_length())
        if path == "/_control" and self.state.test_controls:
            self._control(body)
            return
        if not path.startswith("/reports/"):
            self._problem(404, "not_found", "no such endpoint")
            return
        if self.state.offline:  # a vehicle without a link cannot report either
            self._drop()
            return
        vehicle = path.removeprefix("/reports/")
        if not _VEHICLE.fullmatch(vehicle):
            raise Refused(400, "bad_vehicle", "vehicle ids are 1-64 of A-Z a-z 0-9 . _ -")
        ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0]
        ctype = ctype.strip().lower()
        if ctype not in (*JSON_TYPES, *CBOR_TYPES):
            raise Refused(415, "unsupported_media_type", "reports are JSON or CBOR")
        try:
            render(ctype, body)
        except ReportInvalid as exc:
            raise Refused(400, "report_invalid", exc.detail, reason=exc.reason) from None
        rid = self.state.reports.add(vehicle, ctype, body)
        self._send_json(201, {"id": rid})

    def _control(self, body: bytes) -> None:
        try:
            ctl = json.loads(body or b"{}")
        except (ValueError, RecursionError):
            ctl = None
        offline = ctl.get("offline", False) if isinstance(ctl, dict) else None
        rate = ctl.get("rate_bps") if isinstance(ctl, dict) else None
        if (
            not isinstance(ctl, dict)
            or set(ctl) - {"offline", "rate_bps"}
            or not isinstance(offline, bool)
            or not (rate is None or (type(rate) is int and 0 < rate <= 10**12))
        ):
            raise Refused(
                400, "bad_control", '{"offline": bool, "rate_bps": positive integer or null}'
            )
        with self.state.lock:
            if "offline" in ctl:
                self.state.offline = offline
            if "rate_bps" in ctl:
                self.state.rate_bps = rate
        self._send_json(200, {"offline": self.state.offline, "rate_bps": self.state.rate_bps})
        if self.state.offline:
            self.state.drop_all(keep=self.connection)
