"""HTTP transport shared by metadata fetches and target downloads (urllib3, no hidden retries).

Every response body is read through ``BodyReader``: bounded by the trusted length and watched
by the minimum-throughput watchdog. Network failures are classified into the update error
families (``ConnectivityError`` reason ``no_connection``/``unstable`` — ``SlowRetrievalError``, a
link too slow to be useful, is one —, ``HttpStatusError``). Numbers in a server's headers are
read with ``header_uint`` (ASCII digits, bounded), never a bare ``int()``.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import urllib3
from otalink.host.gateway.update.errors import (
    ConnectivityError,
    DownloadError,
    EndlessDataError,
    HttpStatusError,
    SlowRetrievalError,
    UpdateError,
)
from otalink.host.gateway.update.types import DownloadPolicy
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

USER_AGENT = "otalink-host/0.1"
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
HUGE = 2**64  # any header number with more than 19 significant digits counts as this


def header_uint(value: str | None) -> int | None:
    """A number from a server's header: ASCII digits only (``None`` for anything else — a sign,
    ``_``, Unicode digits like ``²``); more than 19 significant digits give ``HUGE``, larger than
    any trusted length, instead of an unbounded (or failing, past 4300 digits) ``int()``."""
    if value is None:
        return None
    value = value.strip()
    if not _DIGITS.fullmatch(value):
        return None
    value = value.lstrip("0") or "0"
    return int(value) if len(value) <= 19 else HUGE


@dataclass
class Response:
    """An open response: status, headers and a body reader."""

    status: int
    headers: Mapping[str, str]
    raw: urllib3.BaseHTTPResponse

    def close(self, reusable: bool = False) -> None:
        """Give the connection back for keep-alive only if the body was read to its end;
        otherwise close it (a half-read body must never be parsed as the next response)."""
        if not reusable:
            self.raw.close()
        self.raw.release_conn()


def classify(exc: BaseException) -> UpdateError:
    """Map a urllib3/socket failure to the update error family."""
    if isinstance(exc, UpdateError):
        return exc
    reason: BaseException = exc
    if isinstance(exc, MaxRetryError) and exc.reason is not None:
        reason = exc.reason
    if isinstance(reason, NewConnectionError | NameResolutionError | ConnectTimeoutError):
        return ConnectivityError(
            f"cannot reach the update server: {reason}", reason="no_connection"
        )
    if isinstance(reason, ReadTimeoutError | TimeoutError):
        return SlowRetrievalError(f"no data received in time: {reason}")
    if isinstance(reason, ProtocolError | HTTPError | ConnectionError | OSError):
        return ConnectivityError(f"connection broke: {reason}", reason="unstable")
    return DownloadError(f"download failed: {reason!r}")


def _header_deadline_pools(deadline_s: float) -> dict[str, type[HTTPConnectionPool]]:
    """Pool classes whose connections must receive the whole response head within
    ``deadline_s``: the socket read timeout alone lets a server trickle headers forever."""

    def getresponse(self: Any) -> Any:
        sock = self.sock
        hit = threading.Event()

        def cut() -> None:
            hit.set()
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        timer = threading.Timer(deadline_s, cut)
        timer.daemon = True
        timer.start()
        try:
            resp = super(type(self), self).getresponse()
        except Exception as exc:
            if hit.is_set():  # urllib3 turns this into ReadTimeoutError -> slow retrieval
                raise TimeoutError(f"no response head within {deadline_s:.0f} s") from exc
            raise
        finally:
            timer.cancel()
        if hit.is_set():  # the cut may also end the head early and look like a response
            raise TimeoutError(f"no response head within {deadline_s:.0f} s")
        return resp

    http_conn = type("DeadlineHTTPConnection", (HTTPConnection,), {"getresponse": getresponse})
    https_conn = type("DeadlineHTTPSConnection", (HTTPSConnection,), {"getresponse": getresponse})
    return {
        "http": type("DeadlineHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
        "https": type("DeadlineHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
    }


class Transport:
    """One urllib3 pool with explicit timeouts; retries are the caller's business."""

    def __init__(self, policy: DownloadPolicy | None = None) -> None:
        self.policy = policy or DownloadPolicy()
        self._pool = urllib3.PoolManager(
            num_pools=4,
            headers={"User-Agent": USER_AGENT},
            retries=urllib3.Retry(
                total=5, connect=0, read=0, status=0, other=0, redirect=3, raise_on_redirect=True
            ),
            timeout=urllib3.Timeout(
                connect=self.policy.connect_timeout_s, read=self.policy.read_timeout_s
            ),
        )
        self._pool.pool_classes_by_scheme = _header_deadline_pools(self.policy.header_timeout_s)

    def open(
        self, url: str, headers: Mapping[str, str] | None = None, method: str = "GET"
    ) -> Response:
        """Send a request; raises the classified error on failure (HTTP >= 400 included)."""
        try:
            raw = self._pool.request(
                method,
                url,
                headers=dict(headers or {}),
                preload_content=False,
                decode_content=False,
            )
        except Exception as exc:
            raise classify(exc) from exc
        hdrs = {k.lower(): v for k, v in raw.headers.items()}
        resp = Response(status=raw.status, headers=hdrs, raw=raw)
        if raw.status >= 400 and raw.status != 416:
            resp.close()
            raise HttpStatusError(f"HTTP {raw.status} for {url}", raw.status)
        return resp

    def close(self) -> None:
        self._pool.clear()


class BodyReader:
    """Reads a response body in chunks, never past ``limit`` bytes, with the throughput watchdog.

    ``limit`` is the number of bytes the caller still trusts; a server sending more raises
    ``EndlessDataError`` (checked against Content-Length first, then by reading one byte past).
    """

    def __init__(self, resp: Response, limit: int, policy: DownloadPolicy) -> None:
        self.resp = resp
        self.limit = limit
        self.policy = policy
        self.received = 0

    def chunks(self) -> Iterator[bytes]:
        clen = header_uint(self.resp.headers.get("content-length"))
        if clen is not None and clen > self.limit:
            raise EndlessDataError(
                f"server announces {clen} bytes, only {self.limit} are trusted",
                reason="endless_data",
            )
        complete = False
        window_start = time.monotonic()
        window_bytes = 0
        cs = self.policy.chunk_size
        try:
            while self.received < self.limit:
                data = self.resp.raw.read1(min(cs, self.limit - self.received))
                if not data:
                    complete = True
                    return  # EOF before the limit: the caller decides (resume or short file)
                self.received += len(data)
                window_bytes += len(data)
                yield data
                now = time.monotonic()
                elapsed = now - window_start
                if elapsed >= self.policy.throughput_window_s:
                    if window_bytes < self.policy.min_throughput_bps * elapsed:
                        raise SlowRetrievalError(
                            f"{window_bytes / elapsed:.0f} B/s is below the minimum "
                            f"{self.policy.min_throughput_bps} B/s"
                        )
                    window_start, window_bytes = now, 0
            extra = self.resp.raw.read1(1)
            if extra:
                raise EndlessDataError(
                    f"server sent more than the {self.limit} trusted bytes", reason="endless_data"
                )
            complete = True
        except UpdateError:
            raise
        except Exception as exc:
            raise classify(exc) from exc
        finally:
            self.resp.close(reusable=complete)
