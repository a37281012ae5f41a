"""The link session with one ECU: typed requests and their replies over one reader path.

Public interface (stable):
    Session(transport, *, policy=LinkPolicy(), max_payload=DEFAULT_PAYLOAD, verify_key=None,
            command_key=None, clock=SYSTEM_CLOCK)    (``otalink.host.retry.Clock``)
      .request(msg, reply_type, match=None, *, timeout=None, tries=None, cap=None) -> reply
           send ``msg`` (a typed wire message) until a ``reply_type`` message ``match`` takes
           arrives (smpclient's request -> typed response); ERROR answering ``msg``'s type:
           EcuRejected, DEFER answering it: EcuDeferred, nothing: EcuLinkError
      .hello(nonce=None, timeout=None) -> EcuInfo    HELLO -> signed INFO (opens the session)
      .status(nonce=None, timeout=None) -> EcuInfo   STATUS_REQ -> signed STATUS
      .command(mtype, timeout=None) -> int           a signed command -> RESULT detail
      .app(chan, data, timeout=None) -> bytes        APP request -> the application's reply
      .notify(chan, data)                            APP with id 0 (one-way, never answered)
      .subscribe(fn, types=None) -> unsubscribe      unsolicited frames (APP events, types this
                                                     host does not know) -> fn(msg)
      .pump(seconds) -> int                          read the line for ``seconds`` while no
                                                     request runs; events go to subscribers
      .next(deadline) -> WireMessage | None          the one reader (the uploader reads with it)
      .send(msg) / .flush_line(n) / .drain() / .stale(msg) / .reopen(since) / .forget()
      .info (last INFO, None: no session) .payload (negotiated) .cmd_nonce .ecu_id
      .stale_replies .events .unhandled_events .subscriber_errors   counters
      .on_message: Callable[[WireMessage], None] | None   sees every frame read (timing, logs)

Replies are tied to the request in flight: an ERROR counts only if it names the request's type,
a RESULT only with the request's type, INFO / STATUS only with the nonce sent, an APP reply
only with the request's channel and id. Anything else that is a reply to some request is a late
answer to an earlier one: counted in ``stale_replies`` and dropped. Frames that are no reply at
all (an APP event, id 0, or a message type added to the protocol after this host) go to the
subscribers, never taken for a reply and never dropped unseen (``unhandled_events`` counts the
ones no subscriber took); a subscriber that raises is counted and logged, the session goes on.

Commands are signed (protocol version 2, ``commands.py``): over the ECU's command nonce from the
latest INFO / STATUS / RESULT (a STATUS_REQ first when there is none); refused with E_CMD_REPLAY
they are signed once more over a fresh STATUS nonce. No ``command_key``: EcuRejected(E_CMD_AUTH)
and nothing is sent.
"""

from __future__ import annotations

import collections
import logging
import os
from collections.abc import Callable, Iterable
from typing import TypeVar

from otalink.host.gateway.ecu.commands import signed
from otalink.host.gateway.ecu.errors import (
    EcuDeferred,
    EcuLinkError,
    EcuProtocolError,
    EcuRejected,
)
from otalink.host.gateway.ecu.info import EcuInfo
from otalink.host.gateway.ecu.policy import LinkPolicy
from otalink.host.gateway.ecu.transport import Transport
from otalink.host.gateway.ecu.wire import (
    CLASSES_DECLARED,
    App,
    Defer,
    Deframer,
    Error,
    Hello,
    Info,
    Progress,
    Result,
    Status,
    StatusReq,
    WireMessage,
    encode,
    nonce_of,
)
from otalink.host.retry import SYSTEM_CLOCK, Clock
from otalink.protocol import codes

R = TypeVar("R", bound=WireMessage)
Subscriber = Callable[[WireMessage], None]
log = logging.getLogger(__name__)


def is_unsolicited(msg: WireMessage) -> bool:
    """A frame that answers no request: an APP event (id 0) or a type this host does not know."""
    if isinstance(msg, App):
        return msg.id == 0
    return type(msg) not in CLASSES_DECLARED


class Session:
    """Requests and replies with one ECU over any ``Transport``; one thread at a time."""

    def __init__(
        self,
        transport: Transport,
        *,
        policy: LinkPolicy | None = None,
        max_payload: int = codes.DEFAULT_PAYLOAD,
        verify_key: bytes | None = None,
        command_key: bytes | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if command_key is not None and len(command_key) != 32:
            raise ValueError("command_key must be a 32-byte ed25519 seed")
        self.transport = transport
        self.policy = policy or LinkPolicy()
        self.clock = clock
        self.host_max_payload = max(codes.MIN_PAYLOAD, min(max_payload, codes.MAX_PAYLOAD_ABS))
        self.payload = self.host_max_payload  # negotiated at HELLO
        self.verify_key = verify_key
        self.command_key = command_key
        self.info: EcuInfo | None = None  # the last INFO: None until a session is open
        self.cmd_nonce: bytes | None = None  # from the latest INFO / STATUS / RESULT; spent once
        self.ecu_id: str | None = None  # from the latest report: the ecu_id commands are for
        self.on_message: Subscriber | None = None
        self.stale_replies = 0
        self.events = 0
        self.unhandled_events = 0
        self.subscriber_errors = 0
        self._subs: list[tuple[frozenset[int] | None, Subscriber]] = []
        self._deframer = Deframer(codes.MAX_PAYLOAD_ABS)
        self._inbox: collections.deque[WireMessage] = collections.deque()
        self._app_id = 0

    # ---- the reader -----------------------------------------------------------------------
    def subscribe(self, fn: Subscriber, types: Iterable[int] | None = None) -> Callable[[], None]:
        """Hand unsolicited frames (of ``types``, default all) to ``fn`` on the reading thread;
        returns the function that unsubscribes it."""
        entry = (frozenset(types) if types is not None else None, fn)
        self._subs.append(entry)
        return lambda: self._subs.remove(entry) if entry in self._subs else None

    def _route(self, msg: WireMessage) -> bool:
        """Deliver an unsolicited frame to its subscribers; False for a reply (left to the
        caller)."""
        if self.on_message is not None:
            self.on_message(msg)
        if not is_unsolicited(msg):
            return False
        self.events += 1
        taken = False
        for types, fn in list(self._subs):
            if types is not None and msg.type not in types:
                continue
            taken = True
            try:
                fn(msg)
            except Exception:  # an application's callback never breaks the link
                self.subscriber_errors += 1
                log.exception("ECU message subscriber failed on %r", msg)
        if not taken:
            self.unhandled_events += 1
        return True

    def _read(self, timeout: float) -> None:
        data = self.transport.read(timeout)
        if data:
            self._inbox.extend(self._deframer.feed(data))

    def next(self, deadline: float) -> WireMessage | None:
        """The next frame that is no event (events go to the subscribers on the way), or None
        once ``deadline`` (``clock.monotonic()``) passes."""
        while True:
            while not self._inbox:
                left = deadline - self.clock.monotonic()
                if left <= 0:
                    return None
                self._read(left)
            msg = self._inbox.popleft()
            if not self._route(msg):
                return msg

    def pump(self, seconds: float) -> int:
        """Read for ``seconds`` with no request in flight: events reach the subscribers, every
        reply is stale. Returns the number of events delivered."""
        before = self.events
        deadline = self.clock.monotonic() + seconds
        while (msg := self.next(deadline)) is not None:
            self.stale(msg)
        return self.events - before

    def drain(self, keep: Callable[[WireMessage], bool] | None = None) -> WireMessage | None:
        """Before a request: events still go to the subscribers, replies to requests given up
        on are counted and dropped; a partial frame (line noise, or a reply cut short) is
        dropped too, so a false header cannot hold back the coming reply. The first reply
        ``keep`` takes is returned instead (a late answer that is still valid: a report for the
        nonce the coming request carries again)."""
        while True:
            data = self.transport.read(0)
            if not data:
                break
            self._inbox.extend(self._deframer.feed(data))
        self._deframer.reset()
        kept = None
        while self._inbox:
            msg = self._inbox.popleft()
            if self._route(msg):
                continue
            if kept is None and keep is not None and keep(msg):
                kept = msg
            else:
                self.stale(msg)
        return kept

    def stale(self, msg: WireMessage) -> None:
        """A reply that answers no request in flight: counted and dropped."""
        self.stale_replies += 1

    # ---- the writer -------------------------------------------------------------------------
    def send(self, msg: WireMessage) -> None:
        self.transport.write(encode(msg))

    def flush_line(self, n: int | None = None) -> None:
        """Complete any partial frame the device's parser is still waiting for.

        Bytes lost inside a frame leave the receiver holding a candidate whose LEN promises more
        than arrives; it only resynchronises once that many bytes came. Zero bytes never start a
        frame, so a run of them completes the stale candidate and is then skipped.
        """
        self.transport.write(bytes(n if n is not None else self.payload + codes.FRAME_OVERHEAD))

    # ---- requests ---------------------------------------------------------------------------
    def request(
        self,
        msg: WireMessage,
        reply: type[R],
        match: Callable[[R], bool] | None = None,
        *,
        timeout: float | None = None,
        tries: int | None = None,
        cap: float | None = None,
        pending_ok: bool = False,
    ) -> R:
        """Send ``msg`` until a ``reply`` that ``match`` takes arrives (see the module doc).

        Each try waits ``timeout`` s (default: the policy's reply timeout) of silence; a
        PROGRESS restarts that wait, up to ``cap`` s in all (default: the first-data timeout: a
        slot erase or a read-back announces itself with PROGRESS). ``pending_ok``: a matching
        reply already on the line answers it (only for replies bound to a nonce or id of this
        request: a report for a nonce sent again; never for a command's RESULT).
        """
        req = msg.type
        p = self.policy
        timeout = p.reply_timeout if timeout is None else timeout
        cap = p.first_data_timeout if cap is None else cap
        tries = p.tries if tries is None else tries

        def wanted(m: WireMessage) -> bool:
            return isinstance(m, reply) and (match is None or match(m))

        early = self.drain(wanted if pending_ok else None)
        if early is not None:
            assert isinstance(early, reply)
            return early
        for attempt in range(tries):
            if attempt:
                pause = p.retry.delay(attempt)
                if pause > 0:
                    self.clock.sleep(pause)
                self.flush_line()
            self.send(msg)
            start = self.clock.monotonic()
            deadline = start + timeout
            while (got := self.next(deadline)) is not None:
                if isinstance(got, Progress):
                    deadline = min(self.clock.monotonic() + timeout, start + cap)
                elif isinstance(got, Error) and got.request_type == req:
                    raise EcuRejected(got.code, got.detail)
                elif isinstance(got, Defer) and got.request_type == req:
                    raise EcuDeferred(req, got.retry_after_s, got.reason)
                elif isinstance(got, reply) and wanted(got):
                    if isinstance(got, Result):
                        self.cmd_nonce = got.cmd_nonce  # the nonce the next command carries
                    return got
                else:
                    self.stale(got)  # a late answer to another request
        raise EcuLinkError(f"no reply to message type {req} after {tries} tries")

    def _report(self, body: bytes, sig: bytes, nonce: bytes) -> EcuInfo:
        info = EcuInfo.from_wire(body, sig)
        if info.nonce != nonce:
            raise EcuProtocolError("report nonce does not match the request")
        if self.verify_key is not None:
            info.verify(self.verify_key)
        self.cmd_nonce = info.cmd_nonce
        self.ecu_id = info.ecu_id
        return info

    def hello(self, nonce: bytes | None = None, timeout: float | None = None) -> EcuInfo:
        """HELLO: open a session, learn the ECU's capabilities; returns its signed INFO.

        The same ``nonce`` again (a poll while the ECU is busy or rebooting) takes an INFO for
        it that arrived late, instead of dropping it: an ECU slower to sign than the reply
        timeout is still heard."""
        n = nonce or os.urandom(16)
        hello = Hello(codes.PROTOCOL_VERSION, n, self.host_max_payload)
        reply = self.request(
            hello, Info, lambda m: nonce_of(m.body) == n, timeout=timeout, pending_ok=True
        )
        info = self._report(reply.body, reply.sig, n)
        self.info = info
        device_max = info.caps.max_payload or codes.DEFAULT_PAYLOAD
        self.payload = max(codes.MIN_PAYLOAD, min(self.host_max_payload, device_max))
        return info

    def status(self, nonce: bytes | None = None, timeout: float | None = None) -> EcuInfo:
        """STATUS_REQ: the ECU's signed report for a fresh nonce."""
        n = nonce or os.urandom(16)
        reply = self.request(
            StatusReq(n), Status, lambda m: nonce_of(m.body) == n, timeout=timeout,
            pending_ok=True,
        )  # fmt: skip
        return self._report(reply.body, reply.sig, n)

    def command(self, mtype: int, timeout: float | None = None) -> int:
        """A signed command: over the ECU's current command nonce, once more over a fresh one
        if the ECU calls it a replay (its nonce moved on: another command, a reset)."""
        if self.command_key is None:
            raise EcuRejected(
                codes.E_CMD_AUTH, 0, "no command key: EcuClient(command_key=...) signs commands"
            )
        refreshed = False
        while True:
            if self.cmd_nonce is None or self.ecu_id is None:
                self.status()
                refreshed = True
            assert self.cmd_nonce is not None and self.ecu_id is not None
            msg = signed(self.command_key, mtype, self.ecu_id, self.cmd_nonce)
            self.cmd_nonce = None  # spent, whatever comes back
            try:
                reply = self.request(
                    msg, Result, lambda m: m.request_type == mtype, timeout=timeout
                )
            except EcuRejected as exc:
                if exc.wire_code == codes.E_CMD_REPLAY and not refreshed:
                    refreshed = True
                    self.status()  # the ECU's nonce moved on: sign over the fresh one
                    continue
                raise
            if reply.code != codes.OK:
                raise EcuRejected(reply.code, reply.detail)
            return reply.detail

    def app(self, chan: int, data: bytes, timeout: float | None = None) -> bytes:
        """A request on the application channel ``chan``: the application's reply bytes.
        EcuRejected(E_APP_CHANNEL / E_APP_BUSY / E_INTERNAL) when it has none."""
        _check_app(chan, data)
        self._app_id = self._app_id % 0xFFFFFFFF + 1
        mid = self._app_id
        reply = self.request(
            App(chan, mid, bytes(data)), App, lambda m: m.chan == chan and m.id == mid,
            timeout=timeout, pending_ok=True,
        )  # fmt: skip
        return reply.data

    def notify(self, chan: int, data: bytes) -> None:
        """A one-way message to the application (APP id 0: delivered, never answered)."""
        _check_app(chan, data)
        self.send(App(chan, 0, bytes(data)))

    # ---- session life -----------------------------------------------------------------------
    def forget(self) -> None:
        """The ECU restarts (REBOOT, REVERT): the next request opens a new session."""
        self.info = None
        self.cmd_nonce = None

    def reopen(self, since: float) -> EcuInfo:
        """Re-open the session after a link loss: HELLO until a valid INFO answers, for at most
        the policy's ``recover_timeout`` after ``since`` (``clock.monotonic()``), also when every
        answer is out of the profile (a broken peer ends in a clear error, not an endless loop;
        those answers are paced by the policy's ``reopen`` backoff)."""
        p = self.policy
        bad = 0
        nonce = os.urandom(16)  # one for the whole re-open: a late INFO still counts
        while True:
            try:
                return self.hello(nonce)
            except EcuLinkError:
                if self.clock.monotonic() - since > p.recover_timeout:
                    raise
            except EcuProtocolError as exc:
                if self.clock.monotonic() - since > p.recover_timeout:
                    raise EcuProtocolError(
                        f"no valid INFO within recover_timeout {p.recover_timeout:g} s: {exc}"
                    ) from exc
                bad += 1
                self.clock.sleep(p.reopen.delay(bad))

    def close(self) -> None:
        self.transport.close()


def _check_app(chan: int, data: bytes) -> None:
    if not 0 <= chan <= codes.APP_MAX_CHAN or len(data) > codes.APP_MAX_DATA:
        raise ValueError(f"APP: channel 0..{codes.APP_MAX_CHAN}, <= {codes.APP_MAX_DATA} bytes")
