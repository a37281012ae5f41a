"""``tuf.ngclient.FetcherInterface`` on top of our transport (same timeouts and watchdog as the
target downloads). Metadata files are small: a failed connection before the first byte is retried
with backoff; a failure mid-body is left to the caller (ngclient aborts the refresh cleanly)."""

from __future__ import annotations

from collections.abc import Iterator

from otalink.host.gateway.update.errors import (
    ConnectivityError,
    EndlessDataError,
    HttpStatusError,
    SlowRetrievalError,
)
from otalink.host.gateway.update.http import BodyReader, Transport
from otalink.host.retry import SYSTEM_CLOCK, Clock
from tuf.api import exceptions as tuf_exc
from tuf.ngclient.fetcher import FetcherInterface

METADATA_MAX = 5_000_000  # upper bound of any one metadata body (ngclient passes tighter ones)


class OtalinkFetcher(FetcherInterface):
    """The fetcher both ngclient ``Updater``s (and ``otalink tuf-client``) use."""

    def __init__(
        self, transport: Transport, connect_attempts: int = 3, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.transport = transport
        self.connect_attempts = max(1, connect_attempts)
        self.clock = clock

    def _fetch(self, url: str) -> Iterator[bytes]:
        failures = 0
        while True:
            try:
                resp = self.transport.open(url)
                break
            except HttpStatusError as exc:
                raise tuf_exc.DownloadHTTPError(str(exc), exc.status) from exc
            except SlowRetrievalError as exc:
                raise tuf_exc.SlowRetrievalError(str(exc)) from exc
            except ConnectivityError:
                failures += 1
                if failures >= self.connect_attempts:
                    raise
                retry = self.transport.policy.retry
                retry.sleep(retry.delay(failures), clock=self.clock)
        if resp.status == 416:
            resp.close()
            raise tuf_exc.DownloadHTTPError("HTTP 416", 416)
        return self._chunks(BodyReader(resp, METADATA_MAX, self.transport.policy))

    @staticmethod
    def _chunks(reader: BodyReader) -> Iterator[bytes]:
        try:
            yield from reader.chunks()
        except SlowRetrievalError as exc:
            raise tuf_exc.SlowRetrievalError(str(exc)) from exc
        except EndlessDataError as exc:
            raise tuf_exc.DownloadLengthMismatchError(str(exc)) from exc
