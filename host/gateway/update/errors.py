"""Error families of the update layer, each with a stable ``code`` string.

``TrustError``: the metadata, the plan or a target failed a security check — never retried,
nothing from it is used. ``DownloadError``: the network or the server failed — the campaign may
retry later (``retryable`` tells whether a retry can help); a link too slow to be useful
(``SlowRetrievalError``) is one of them, so a partial download is kept and resumed.
"""

from __future__ import annotations

from otalink.host import errors as root


class UpdateError(root.OtalinkError):
    """Base of every error raised by ``otalink.host.gateway.update`` (no family of its own:
    each error is a ``TrustError`` or a ``DownloadError``, a ``TransportError``)."""

    code = "update.error"
    retryable = False

    def __init__(self, message: str, *, reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or message

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


# ---- trust ------------------------------------------------------------------------------------
class TrustError(UpdateError, root.TrustError):
    """A security check failed; the update is refused (the trust family)."""

    code = "trust.error"


class SignatureError(TrustError):
    """Metadata not signed by the keys the trusted root names (arbitrary software)."""

    code = "trust.signature"


class BelowThresholdError(SignatureError):
    """Metadata signed by some trusted keys, but fewer than the role's threshold."""

    code = "trust.below_threshold"


class RollbackError(TrustError):
    """Older metadata version or older release counter than already trusted/installed."""

    code = "trust.rollback"


class FreezeError(TrustError):
    """Metadata (or an install instruction) has expired: a freeze attack or a stale mirror."""

    code = "trust.expired"


class MixAndMatchError(TrustError):
    """Director and Image repositories disagree about a target, or metadata do not fit together."""

    code = "trust.mix_and_match"


class WrongHardwareError(TrustError):
    """The assigned image is not built for the ECU's hardware id."""

    code = "trust.wrong_hardware"


class UnknownEcuError(TrustError):
    """The Director assigns an image to an ECU that is not in this vehicle's inventory."""

    code = "trust.unknown_ecu"


class InstructionError(TrustError):
    """The signed install instruction is malformed, badly signed or disagrees with the metadata."""

    code = "trust.instruction"


class EndlessDataError(TrustError):
    """The server sent more bytes than the trusted length (endless-data attack)."""

    code = "trust.endless_data"


class TargetIntegrityError(TrustError):
    """A downloaded target does not match its trusted length/hash (partial or altered bundle)."""

    code = "trust.integrity"


class RepositoryMetadataError(TrustError):
    """Any other metadata verification failure reported by python-tuf."""

    code = "trust.metadata"


# ---- download / connectivity -----------------------------------------------------------------
class DownloadError(UpdateError, root.TransportError):
    """The network or the server failed; nothing untrusted was used (the transport family)."""

    code = "download.error"
    retryable = True


class ConnectivityError(DownloadError):
    """No connection or an unstable one: "a stable connection is required".

    ``reason`` is ``no_connection`` (nothing reachable) or ``unstable`` (transfers keep breaking).
    """

    code = "download.connectivity"


class SlowRetrievalError(ConnectivityError):
    """The transfer stayed below the minimum throughput, or nothing arrived in time.

    A slow-retrieval attack and a dying cellular link look the same, and neither makes a byte
    untrusted (every image is checked against its trusted length and hash at the end): the
    download stops like on any unstable link, keeps what it received and resumes later.
    ``reason`` is ``unstable`` ("a stable connection is required").
    """

    code = "download.slow_retrieval"

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="unstable")


class NeedsPermissionError(DownloadError):
    """The link is metered (cellular) and the driver has not allowed downloading over it."""

    code = "download.needs_permission"


class HttpStatusError(DownloadError):
    """The server answered with an HTTP error; 4xx are not retried."""

    code = "download.http"

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message, reason=f"http_{status}")
        self.status = status
        self.retryable = status >= 500


class DownloadInterrupted(DownloadError):
    """``should_stop()`` asked the download to stop; partial files are kept for resuming."""

    code = "download.interrupted"


class StorageError(DownloadError):
    """The local target directory cannot hold the download."""

    code = "download.storage"
    retryable = False


ERROR_CODES: dict[str, type[UpdateError]] = {
    cls.code: cls
    for cls in (
        UpdateError,
        TrustError,
        SignatureError,
        BelowThresholdError,
        RollbackError,
        FreezeError,
        MixAndMatchError,
        WrongHardwareError,
        UnknownEcuError,
        InstructionError,
        EndlessDataError,
        TargetIntegrityError,
        RepositoryMetadataError,
        DownloadError,
        ConnectivityError,
        SlowRetrievalError,
        NeedsPermissionError,
        HttpStatusError,
        DownloadInterrupted,
        StorageError,
    )
}
