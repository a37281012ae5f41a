"""Typed ECU messages on the host: one frozen dataclass per message type of the wire table.

Every type of ``protocol/wire.py``'s ``SPECS`` (the table both runtimes validate with) has a
class here: the fields are named and typed (uint -> int, bstr -> bytes, tstr -> str, the
signature list of BEGIN -> tuple of pairs), checked against ``SPECS`` when this module is
imported (a class that disagrees with the table in arity or field kind is an ImportError). A type
that appears in ``SPECS`` without a class here (a newer protocol addition) gets one made from
the table at import (fields ``f1``, ``f2`` ... of the table's kinds), so it still decodes and
reaches the session's subscribers, never dropped.

Public interface:
    WireMessage                       base: .type (the MSG_* code), .payload() -> CBOR bytes
    Hello Info Begin Data Ack Status Progress End Result Activate Reboot Confirm Revert Abort
    Error StatusReq App Defer Probe   the messages (docs/protocol.md "Messages")
    COMMANDS: dict[int, type[Command]]   the signed commands by type
    CLASSES: dict[int, type[WireMessage]]   every type of SPECS -> its class
    build_classes(specs) -> dict[int, type[WireMessage]]   how CLASSES is made (and checked)
    CLASSES_DECLARED                   the classes written here (the others: made from SPECS)
    decode(payload) -> WireMessage     validated (protocol/wire.py parse) and typed; ProtocolError
    encode(msg) -> bytes               one framed message
    decode_report(body) -> list[Any]   validated report body (INFO / STATUS)
    nonce_of(body) -> bytes | None     a report body's nonce (reply matching, no full decode)
    Deframer(max_payload).feed(data) -> list[WireMessage]   typed messages, in order
      .crc_errors / .frame_errors / .bad_messages counters
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from otalink.protocol import cbor, codes, messages
from otalink.protocol.errors import ProtocolError
from otalink.protocol.frame import FrameParser, frame
from otalink.protocol.wire import SPECS

Sig = tuple[bytes, bytes]  # (keyid, signature) of BEGIN's list


class WireMessage:
    """Base of the typed messages: ``TYPE`` is the message's code (protocol/codes.py MSG_*)."""

    __slots__ = ()
    TYPE: ClassVar[int] = -1
    NAMES: ClassVar[tuple[str, ...]] = ()  # the field names, in wire order (set at import)

    @property
    def type(self) -> int:
        return self.TYPE

    def fields(self) -> list[Any]:
        """The fields after the type, as the wire carries them."""
        return [getattr(self, n) for n in self.NAMES]

    def payload(self) -> bytes:
        """The message's CBOR payload (not framed)."""
        return cbor.dumps([self.TYPE, *self.fields()])

    @classmethod
    def from_fields(cls, fields: list[Any]) -> WireMessage:
        """The message from its decoded fields (the table has checked them)."""
        return cls(*fields)  # each subclass is a dataclass of these fields


@dataclass(frozen=True, slots=True)
class Hello(WireMessage):
    TYPE: ClassVar[int] = codes.MSG_HELLO
    proto_ver: int
    nonce: bytes
    max_payload: int


@dataclass(frozen=True, slots=True)
class Info(WireMessage):
    """A signed report: ``body`` (exact signed bytes, a CBOR array) and its ``sig``."""

    TYPE: ClassVar[int] = codes.MSG_INFO
    body: bytes
    sig: bytes


@dataclass(frozen=True, slots=True)
class Begin(WireMessage):
    TYPE: ClassVar[int] = codes.MSG_BEGIN
    instr: bytes
    sigs: tuple[Sig, ...]
    image_len: int
    sha256: bytes
    compression: int
    wire_len: int

    def fields(self) -> list[Any]:
        return [self.instr, [list(s) for s in self.sigs], self.image_len, self.sha256,
                self.compression, self.wire_len]  # fmt: skip

    @classmethod
    def from_fields(cls, fields: list[Any]) -> WireMessage:
        sigs = tuple((bytes(k), bytes(s)) for k, s in fields[1])
        return cls(fields[0], sigs, *fields[2:])


@dataclass(frozen=True, slots=True)
class Data(WireMessage):
    TYPE: ClassVar[int] = codes.MSG_DATA
    offset: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Ack(WireMessage):
    """The device's expected offset, the bytes the host may send past it, its phase."""

    TYPE: ClassVar[int] = codes.MSG_ACK
    offset: int
    window: int
    phase: int


@dataclass(frozen=True, slots=True)
class Status(WireMessage):
    TYPE: ClassVar[int] = codes.MSG_STATUS
    body: bytes
    sig: bytes


@dataclass(frozen=True, slots=True)
class Progress(WireMessage):
    TYPE: ClassVar[int] = codes.MSG_PROGRESS
    phase: int
    done: int
    total: int


@dataclass(frozen=True, slots=True)
class End(WireMessage):
    TYPE: ClassVar[int] = codes.MSG_END
    wire_len: int


@dataclass(frozen=True, slots=True)
class Result(WireMessage):
    """The outcome of ``request_type``; ``cmd_nonce``: the nonce the next command carries."""

    TYPE: ClassVar[int] = codes.MSG_RESULT
    request_type: int
    code: int
    detail: int
    cmd_nonce: bytes


@dataclass(frozen=True, slots=True)
class Command(WireMessage):
    """A signed command: ``cmd`` (the exact signed CBOR bytes), ``keyid``, ``sig``."""

    cmd: bytes
    keyid: bytes
    sig: bytes


@dataclass(frozen=True, slots=True)
class Activate(Command):
    TYPE: ClassVar[int] = codes.MSG_ACTIVATE


@dataclass(frozen=True, slots=True)
class Reboot(Command):
    TYPE: ClassVar[int] = codes.MSG_REBOOT


@dataclass(frozen=True, slots=True)
class Confirm(Command):
    TYPE: ClassVar[int] = codes.MSG_CONFIRM


@dataclass(frozen=True, slots=True)
class Revert(Command):
    TYPE: ClassVar[int] = codes.MSG_REVERT


@dataclass(frozen=True, slots=True)
class Abort(Command):
    TYPE: ClassVar[int] = codes.MSG_ABORT


@dataclass(frozen=True, slots=True)
class Error(WireMessage):
    """``code`` (E_*) answering ``request_type`` (0: not known)."""

    TYPE: ClassVar[int] = codes.MSG_ERROR
    code: int
    detail: int
    request_type: int


@dataclass(frozen=True, slots=True)
class StatusReq(WireMessage):
    TYPE: ClassVar[int] = codes.MSG_STATUS_REQ
    nonce: bytes


@dataclass(frozen=True, slots=True)
class App(WireMessage):
    """The application channel: a host request (id >= 1), its reply (same id) or an
    ECU-initiated event (id 0)."""

    TYPE: ClassVar[int] = codes.MSG_APP
    chan: int
    id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Defer(WireMessage):
    """The ECU's application deferred ``request_type`` (BEGIN) for ``reason``."""

    TYPE: ClassVar[int] = codes.MSG_DEFER
    request_type: int
    retry_after_s: int
    reason: str


@dataclass(frozen=True, slots=True)
class Probe(WireMessage):
    """A receive probe (host -> device), or what the device decoded (its answer to END)."""

    TYPE: ClassVar[int] = codes.MSG_PROBE
    image_len: int
    sha256: bytes
    compression: int
    wire_len: int


# ---- the table check and the classes made from it --------------------------------------------
# SPECS field kinds (protocol/wire.py: 0 uint, 1 bstr, 2 tstr, 3 BEGIN's signature list)
_KIND_TYPES: dict[int, type] = {0: int, 1: bytes, 2: str, 3: tuple}
_ANNOTATIONS = {"int": 0, "bytes": 1, "str": 2, "tuple[Sig, ...]": 3}


def _kinds(cls: type[WireMessage]) -> list[int]:
    return [_ANNOTATIONS.get(str(f.type), -1) for f in dataclasses.fields(cls)]  # type: ignore[arg-type]


DECLARED: tuple[type[WireMessage], ...] = (
    Hello, Info, Begin, Data, Ack, Status, Progress, End, Result, Activate, Reboot, Confirm,
    Revert, Abort, Error, StatusReq, App, Defer, Probe,
)  # fmt: skip


def build_classes(specs: dict[int, Any]) -> dict[int, type[WireMessage]]:
    """Every type of ``specs`` (protocol/wire.py's SPECS) -> its class: the declared one,
    checked against the table (ImportError when they disagree), or one made from the table."""
    names = {v: k[4:] for k, v in vars(codes).items() if k.startswith("MSG_")}
    table: dict[int, type[WireMessage]] = {}
    for cls in DECLARED:
        spec = specs.get(cls.TYPE)
        if spec is None:
            raise ImportError(f"{cls.__name__}: type {cls.TYPE} is not in protocol/wire.py SPECS")
        want = [s[0] for s in spec]
        if _kinds(cls) != want:
            raise ImportError(f"{cls.__name__} fields {_kinds(cls)} != SPECS kinds {want}")
        cls.NAMES = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
        table[cls.TYPE] = cls
    for t, spec in sorted(specs.items()):
        if t in table:
            continue
        name = "".join(w.capitalize() for w in names.get(t, f"TYPE_{t}").split("_"))
        made: type[WireMessage] = dataclasses.make_dataclass(
            name,
            [(f"f{i + 1}", _KIND_TYPES.get(s[0], object)) for i, s in enumerate(spec)],
            bases=(WireMessage,),
            namespace={"TYPE": t, "__module__": __name__},
            frozen=True,
            slots=True,
        )
        made.NAMES = tuple(f"f{i + 1}" for i in range(len(spec)))
        table[t] = made
    return table


CLASSES: dict[int, type[WireMessage]] = build_classes(SPECS)
CLASSES_DECLARED: frozenset[type[WireMessage]] = frozenset(DECLARED)
COMMANDS: dict[int, type[Command]] = {c.TYPE: c for c in (Activate, Reboot, Confirm, Revert, Abort)}


def decode(payload: bytes | bytearray | memoryview) -> WireMessage:
    """One payload, validated against the protocol's table, as its typed message."""
    f = messages.parse(payload, True)
    cls = CLASSES.get(f[0])
    if cls is None:  # parse() knows only SPECS types: cannot happen
        raise ProtocolError(codes.E_UNKNOWN_TYPE, f[0])
    return cls.from_fields(f[1:])


def encode(msg: WireMessage) -> bytes:
    """Frame one message for the wire."""
    return frame(msg.payload())


def decode_report(body: bytes) -> list[Any]:
    """A report body decoded and checked against the protocol's bounds (ProtocolError if not)."""
    return messages.decode_report(body)


def nonce_of(body: bytes) -> bytes | None:
    """The nonce field of a report body without a full decode (to match a reply)."""
    try:
        f = cbor.loads(body, True)
    except ProtocolError:
        return None
    if isinstance(f, list) and len(f) > messages.R_NONCE and isinstance(f[3], bytes):
        return f[3]
    return None


class Deframer:
    """Resynchronising frame parser (protocol.frame) that yields validated, typed messages."""

    def __init__(self, max_payload: int = codes.MAX_PAYLOAD_ABS) -> None:
        self.max_payload = max_payload
        self._parser = FrameParser(max_payload)
        self.bad_messages = 0

    @property
    def crc_errors(self) -> int:
        return int(self._parser.crc_errors)

    @property
    def frame_errors(self) -> int:
        return int(self._parser.frame_errors)

    def reset(self) -> None:
        self._parser = FrameParser(self.max_payload)

    def feed(self, data: bytes) -> list[WireMessage]:
        out: list[WireMessage] = []
        for payload in self._parser.feed_all(data):
            try:
                out.append(decode(payload))
            except ProtocolError:
                self.bad_messages += 1
        return out
