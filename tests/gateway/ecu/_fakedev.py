"""A scripted ECU on a real pty (``_peer.Peer``): enough of the protocol for a whole transfer,
plus what a test wants on top (APP events between ACKs, a deferring application, a probe).

``FakeEcu(**options).peer.port`` is the line for the client. It answers HELLO / STATUS_REQ with
a report signed by ``key`` (a fresh KeyPair), BEGIN / PROBE with ACK(0 or
its offset, window), DATA through a real ``RxWindow`` (ACK, or ERROR E_OUT_OF_WINDOW), END with
RESULT(END, OK) (a probe: PROBE with what it decoded), APP requests with their reply, signed
commands with RESULT OK (no signature check). ``received`` holds the wire bytes, in order.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

from otalink.host.keys import KeyPair
from otalink.protocol import codes, messages
from otalink.protocol.transfer import ACCEPT, OUT_OF_WINDOW, RxWindow

from tests.gateway.ecu._peer import Peer


@dataclass
class Options:
    window: int = 4 * 1024
    max_payload: int = 1024
    events_every: int = 0  # an APP event (id 0) after every N-th DATA's ACK
    event_chan: int = 7
    defer: str | None = None  # the application defers BEGIN with this reason
    probe_corrupt: bool = False  # a probe decodes to other bytes
    app_replies: dict[int, bytes] = field(default_factory=dict)  # chan -> reply (else ERROR)
    stale_app_first: bool = False  # a late reply of an earlier APP id before each reply


class FakeEcu:
    def __init__(self, **kw: Any) -> None:
        self.opt = Options(**kw)
        self.rx: RxWindow | None = None
        self.received = bytearray()
        self.wire_len = 0
        self.image_len = 0
        self.sha = b""
        self.probing = False
        self.events_sent = 0
        self.data_frames = 0
        self.cmd_nonce = os.urandom(16)
        self.key = KeyPair.generate()  # signs the reports (a client with verify_key checks)
        self.peer = Peer(self.answer)

    def close(self) -> None:
        self.peer.close()

    def report(self, nonce: bytes) -> bytes:
        o = self.opt
        return bytes(
            messages.encode_report(
                "fake-1", "hw-fake", nonce, 0, codes.BOOT_NORMAL, codes.OK,
                [[codes.SLOT_CONFIRMED, "1.0", 1, 10, bytes(32)],
                 [codes.SLOT_EMPTY, "", 0, 0, b""]],
                [o.max_payload, o.window, 1 << 20, 4096, 4, 0, 0], [codes.PH_IDLE, 0, 0, 0],
                1, 0, 0, self.cmd_nonce, agent_version="fake-agent-3",
                app=[codes.APP_HEALTHY, 0, 0],
            )
        )  # fmt: skip

    def answer(self, m: list[Any]) -> list[bytes]:
        t = m[0]
        o = self.opt
        if t == codes.MSG_HELLO:
            body = self.report(bytes(m[2]))
            return [messages.info(body, self.key.sign(body))]
        if t == codes.MSG_STATUS_REQ:
            body = self.report(bytes(m[1]))
            return [messages.status(body, self.key.sign(body))]
        if t in (codes.MSG_BEGIN, codes.MSG_PROBE):
            if t == codes.MSG_BEGIN and o.defer is not None:
                return [messages.defer(t, 30, o.defer)]
            self.probing = t == codes.MSG_PROBE
            self.image_len, self.sha, self.wire_len = (m[3], m[4], m[6]) if not self.probing else (
                m[1], m[2], m[4])  # fmt: skip
            self.rx = RxWindow(o.window, wire_len=self.wire_len)
            self.received = bytearray()
            return [messages.ack(0, o.window, codes.PH_RECEIVING)]
        if t == codes.MSG_DATA:
            return self.data(m[1], bytes(m[2]))
        if t == codes.MSG_END:
            if self.rx is None or self.rx.expected != m[1]:
                return [messages.error(codes.E_BAD_STATE, t, t)]
            if self.probing:
                got = bytes(self.received)
                if o.probe_corrupt:
                    got = got[:-1] + bytes([got[-1] ^ 1])
                return [messages.probe(len(got), hashlib.sha256(got).digest(), 0, self.wire_len)]
            return [messages.result(t, codes.OK, 0, self.cmd_nonce)]
        if t == codes.MSG_APP:
            out = []
            if o.stale_app_first and m[2] > 1:
                out.append(messages.app(m[1], m[2] - 1, b"late"))
            if m[1] in o.app_replies:
                out.append(messages.app(m[1], m[2], o.app_replies[m[1]]))
            else:
                out.append(messages.error(codes.E_APP_CHANNEL, m[1], codes.MSG_APP))
            return out
        if t in messages.COMMANDS:
            self.cmd_nonce = os.urandom(16)
            return [messages.result(t, codes.OK, 0, self.cmd_nonce)]
        return [messages.error(codes.E_BAD_STATE, t, t)]

    def data(self, off: int, chunk: bytes) -> list[bytes]:
        rx = self.rx
        if rx is None:
            return [messages.error(codes.E_BAD_STATE, codes.MSG_DATA, codes.MSG_DATA)]
        c = rx.classify(off, len(chunk))
        if c == OUT_OF_WINDOW:
            return [messages.error(codes.E_OUT_OF_WINDOW, rx.expected, codes.MSG_DATA)]
        if c == ACCEPT:
            self.received += chunk
            rx.accept(len(chunk))
        out = [messages.ack(rx.expected, self.opt.window, codes.PH_RECEIVING)]
        self.data_frames += 1
        every = self.opt.events_every
        if every and self.data_frames % every == 0:
            self.events_sent += 1
            out.append(messages.app(self.opt.event_chan, 0, b"soc=%d" % self.events_sent))
        return out
