"""Typed ECU messages: one class per type of protocol/wire.py SPECS, checked against it, decoding
every golden vector to its class and encoding it back to the same bytes."""

from __future__ import annotations

from typing import Any

import pytest
from otalink.host.gateway.ecu import wire
from otalink.host.gateway.ecu.wire import (
    CLASSES,
    Ack,
    Begin,
    Deframer,
    Error,
    Result,
    WireMessage,
    build_classes,
    decode,
    encode,
)
from otalink.protocol import codes, messages
from otalink.protocol.errors import ProtocolError

from tests.vectors.vecio import rows, unhex


def test_every_type_of_the_table_has_its_class() -> None:
    assert set(CLASSES) == set(messages.SPECS)
    for t, cls in CLASSES.items():
        assert t == cls.TYPE
        assert len(cls.NAMES) == len(messages.SPECS[t]), cls
    # the names of codes.py, typed fields instead of positions
    assert CLASSES[codes.MSG_ACK] is Ack and Ack.NAMES == ("offset", "window", "phase")
    assert Error.NAMES == ("code", "detail", "request_type")
    assert Result.NAMES == ("request_type", "code", "detail", "cmd_nonce")


VECTORS = rows("messages.hex")


@pytest.mark.parametrize("row", VECTORS, ids=[r[0] for r in VECTORS])
def test_golden_vectors_decode_typed_and_encode_back(row: list[str]) -> None:
    name, payload_hex, frame_hex = row[0], row[1], row[2]
    payload = unhex(payload_hex)
    msg = decode(payload)
    assert isinstance(msg, WireMessage) and type(msg) is CLASSES[payload[1]]  # types < 24: one byte
    assert msg.payload() == payload, name  # the profile is canonical: the same bytes
    assert encode(msg) == unhex(frame_hex), name
    assert [msg.type, *msg.fields()] == _norm(messages.parse(payload, True))


def _norm(v: Any) -> Any:
    return [_norm(x) for x in v] if isinstance(v, list) else v


def test_begin_signatures_are_pairs() -> None:
    sigs = ((b"k" * 8, b"s" * 64), (b"K" * 8, b"S" * 64))
    b = Begin(b"instr", sigs, 100, bytes(32), codes.COMP_NONE, 100)
    back = decode(b.payload())
    assert back == b and isinstance(back, Begin) and back.sigs == sigs


def test_deframer_yields_typed_messages_and_counts_bad_ones() -> None:
    d = Deframer()
    good = encode(Ack(4096, 16384, codes.PH_RECEIVING))
    bad = wire.frame(bytes([0x82, 0x05, 0x01]))  # ACK with a missing field
    out = d.feed(good[:5]) + d.feed(good[5:] + bad + good)  # split, bad, whole
    assert out == [Ack(4096, 16384, 1), Ack(4096, 16384, 1)]
    assert out[0].offset == 4096 and d.bad_messages == 1
    with pytest.raises(ProtocolError):
        decode(bytes([0x81, 0x30]))  # type 0x30: not in the table


def test_a_class_that_disagrees_with_the_table_is_refused_at_import() -> None:
    specs = dict(messages.SPECS)
    specs[codes.MSG_ACK] = specs[codes.MSG_ACK][:2]  # the table drops a field
    with pytest.raises(ImportError, match="Ack"):
        build_classes(specs)
    specs = dict(messages.SPECS)
    specs[codes.MSG_END] = ((1, 0, 8),)  # a bstr where End declares an int
    with pytest.raises(ImportError, match="End"):
        build_classes(specs)
    specs = dict(messages.SPECS)
    del specs[codes.MSG_APP]  # a declared class the table does not know
    with pytest.raises(ImportError, match="App"):
        build_classes(specs)


def test_new_types_of_the_table_flow_in() -> None:
    specs = dict(messages.SPECS)
    specs[0x7D] = ((0, 0, 255), (2, 0, 16), (1, 0, 8))
    made = build_classes(specs)[0x7D]
    m = made(3, "hi", b"\x01")
    assert m.type == 0x7D and m.NAMES == ("f1", "f2", "f3") and m.fields() == [3, "hi", b"\x01"]
    assert m.payload() == bytes([0x84, 0x18, 0x7D, 0x03, 0x62]) + b"hi" + bytes([0x41, 0x01])
