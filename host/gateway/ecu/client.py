"""ECU client: the convenient facade over one ECU's link session and its uploader.

Public interface (stable):
    EcuClient(url: str | None = None, *, transport: Transport | None = None,
              baud: int | None = None,
              timeout: float = T_REPLY_MS/1000, first_data_timeout: float = T_FIRST_DATA_MS/1000,
              recover_timeout: float = 60.0, max_payload: int = DEFAULT_PAYLOAD,
              verify_key: bytes | None = None, command_key: bytes | None = None,
              policy: LinkPolicy | None = None)     (``policy`` replaces the three timeouts)
      .hello(nonce=None, *, timeout=None) -> EcuInfo        HELLO -> signed INFO
      .status(nonce=None, *, timeout=None) -> EcuInfo       STATUS_REQ -> signed STATUS
      .install(instr, sigs, image, *, compress=None, progress=None) -> TransferResult
      .probe(image, *, compress=None) -> ProbeResult        receive probe (nothing written)
      .prepare_stream(image, compress) -> (wire bytes, compression)
      .activate() / .reboot() / .confirm() / .revert() / .abort()  (timeout=None) -> int
           signed commands; the RESULT's detail
      .app(chan, data, *, timeout=None) -> bytes            application channel request
      .subscribe(fn, types=None) -> unsubscribe              unsolicited frames (APP events)
      .forget_session()                                      the next request opens a session
      .info -> EcuInfo | None (last INFO)  .timeout (per-try reply wait)  .transport
      .stale_replies -> int  .begin_acks -> list[int]  .cmd_nonce -> bytes | None
      .session: Session    .uploader: Uploader              the two parts, for what the facade
                                                            does not wrap (docs below)
      .close(), context manager
    Errors: EcuError family (otalink.host.gateway.ecu.errors) with ``wire_code`` from
    protocol/codes.py.

``session`` (``session.py``) is the link: HELLO / STATUS / signed commands with the command
nonce, requests tied to their replies, one reader that hands unsolicited device frames (APP
events) to subscribers. ``uploader`` (``uploader.py``) drives the one transfer engine
(``otalink.protocol.transfer.TxWindow``) over it: resume at the device's offset, go-back,
RTT-based retransmits, compression / segments. Every wait comes from a ``LinkPolicy``
(``policy.py``); a per-call ``timeout`` overrides the per-try reply wait of that call only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from otalink.host.gateway.ecu.info import EcuInfo
from otalink.host.gateway.ecu.policy import LinkPolicy
from otalink.host.gateway.ecu.result import TransferResult
from otalink.host.gateway.ecu.session import Session, Subscriber
from otalink.host.gateway.ecu.transport import SerialTransport, Transport
from otalink.host.gateway.ecu.uploader import Patch, ProbeResult, Uploader
from otalink.protocol import codes

Progress = Callable[[int, int], None]


class EcuClient:
    """One ECU over any ``Transport``: a ``Session`` and an ``Uploader`` behind one object."""

    def __init__(
        self,
        url: str | None = None,
        *,
        transport: Transport | None = None,
        baud: int | None = None,
        timeout: float = codes.T_REPLY_MS / 1000,
        first_data_timeout: float = codes.T_FIRST_DATA_MS / 1000,
        recover_timeout: float = 60.0,
        max_payload: int = codes.DEFAULT_PAYLOAD,
        verify_key: bytes | None = None,
        command_key: bytes | None = None,
        policy: LinkPolicy | None = None,
    ) -> None:
        if command_key is not None and len(command_key) != 32:
            raise ValueError("command_key must be a 32-byte ed25519 seed")
        if policy is None:
            policy = LinkPolicy(
                reply_timeout=timeout,
                first_data_timeout=first_data_timeout,
                recover_timeout=recover_timeout,
            )
        if transport is None:
            if url is None:
                raise ValueError("EcuClient needs a url or a transport")
            transport = SerialTransport(url, baud)
        self.session = Session(
            transport,
            policy=policy,
            max_payload=max_payload,
            verify_key=verify_key,
            command_key=command_key,
        )
        self.uploader = Uploader(self.session)

    # ---- plumbing -----------------------------------------------------------------------------
    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> EcuClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def transport(self) -> Transport:
        return self.session.transport

    @property
    def timeout(self) -> float:
        """The per-try reply wait (the policy's; a call's ``timeout`` overrides it once)."""
        return self.session.policy.reply_timeout

    @property
    def info(self) -> EcuInfo | None:
        """The last INFO (None: no session open)."""
        return self.session.info

    @property
    def cmd_nonce(self) -> bytes | None:
        return self.session.cmd_nonce

    @property
    def stale_replies(self) -> int:
        return self.session.stale_replies

    @property
    def begin_acks(self) -> list[int]:
        return self.uploader.begin_acks

    # ---- session ------------------------------------------------------------------------------
    def hello(self, nonce: bytes | None = None, *, timeout: float | None = None) -> EcuInfo:
        """HELLO: open a session, learn the ECU's capabilities; returns its signed INFO."""
        return self.session.hello(nonce, timeout)

    def status(self, nonce: bytes | None = None, *, timeout: float | None = None) -> EcuInfo:
        """STATUS_REQ: the ECU's signed report for a fresh nonce."""
        return self.session.status(nonce, timeout)

    def forget_session(self) -> None:
        """The ECU restarts (after REBOOT / REVERT): the next request opens a new session."""
        self.session.forget()

    def activate(self, timeout: float | None = None) -> int:
        """Mark the verified slot pending: the next boot runs it on trial."""
        return self.session.command(codes.MSG_ACTIVATE, timeout)

    def reboot(self, timeout: float | None = None) -> int:
        try:
            return self.session.command(codes.MSG_REBOOT, timeout)
        finally:
            self.session.cmd_nonce = None  # the ECU makes a new one when it starts again

    def confirm(self, timeout: float | None = None) -> int:
        return self.session.command(codes.MSG_CONFIRM, timeout)

    def revert(self, timeout: float | None = None) -> int:
        return self.session.command(codes.MSG_REVERT, timeout)

    def abort(self, timeout: float | None = None) -> int:
        return self.session.command(codes.MSG_ABORT, timeout)

    def app(self, chan: int, data: bytes, *, timeout: float | None = None) -> bytes:
        """A request to the ECU's application on channel ``chan``; its reply."""
        return self.session.app(chan, data, timeout)

    def subscribe(self, fn: Subscriber, types: Iterable[int] | None = None) -> Callable[[], None]:
        """Unsolicited device frames (APP events ...) to ``fn``, also while a transfer runs."""
        return self.session.subscribe(fn, types)

    # ---- transfer -----------------------------------------------------------------------------
    def prepare_stream(self, image: bytes, compress: bool | None) -> tuple[bytes, int]:
        """The wire stream for ``image`` and its compression code (``Uploader``)."""
        return self.uploader.prepare_stream(image, compress)

    def install(
        self,
        instr: bytes,
        sigs: list[tuple[bytes, bytes]],
        image: bytes | Patch,
        *,
        compress: bool | None = None,
        progress: Progress | None = None,
    ) -> TransferResult:
        """Stream ``image`` into the inactive slot and wait for the device's verified RESULT;
        a ``Patch`` (delta update) crosses the line instead and the ECU applies it to its active
        image (the instruction binds that base; ``EcuRejected`` E_BASE_MISMATCH otherwise)."""
        return self.uploader.install(instr, sigs, image, compress=compress, progress=progress)

    def probe(self, image: bytes, *, compress: bool | None = None) -> ProbeResult:
        """A receive probe of ``image`` (docs/protocol.md 7.1): nothing is written."""
        return self.uploader.probe(image, compress=compress)
