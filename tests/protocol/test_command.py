"""protocol/command.py, the device's byte-level parser of signed commands, against independent
oracles: cbor2 for the signed bytes, the full message parser (wire.parse) for the message.

The device parses commands with command.py alone (no CBOR codec in its heap); these tests show it
accepts exactly what the profile accepts, with the same values, so the two paths cannot differ.
"""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from otalink.protocol import codes, command, messages, wire
from otalink.protocol.errors import ProtocolError

CMDS = list(messages.COMMANDS)


def oracle_fields(data: bytes) -> list[Any] | None:
    """cbor2's reading: [1, a command type, text of 1..32 UTF-8 bytes, 16 bytes], and the
    profile's one encoding of it (cbor2 writes shortest heads and definite lengths)."""
    try:
        v = cbor2.loads(data)
    except Exception:  # cbor2 raises several types; any means "not CBOR"
        return None
    if not (isinstance(v, list) and len(v) == 4):
        return None
    fmt, t, ecu, nonce = v
    if type(fmt) is not int or fmt != messages.CMD_FMT or type(t) is not int or t not in CMDS:
        return None
    if not isinstance(ecu, str) or not 1 <= len(ecu.encode()) <= messages.MAX_ID:
        return None
    if not isinstance(nonce, bytes) or len(nonce) != messages.NONCE_LEN:
        return None
    if cbor2.dumps(v) != data:
        return None
    return v


def ours(data: bytes) -> list[Any] | int:
    try:
        return messages.decode_command(data)
    except ProtocolError as e:
        return e.code


def _valid_cmd() -> st.SearchStrategy[bytes]:
    return st.builds(
        lambda t, ecu, nonce: cbor2.dumps([1, t, ecu, nonce]),
        st.sampled_from(CMDS),
        st.text(min_size=1, max_size=12).filter(lambda s: len(s.encode()) <= 32),
        st.binary(min_size=16, max_size=16),
    )


def _mutated(data: bytes, pos: int, byte: int, cut: int) -> bytes:
    b = bytearray(data)
    if b:
        b[pos % len(b)] = byte
    return bytes(b[: len(b) - cut % 3])


@settings(max_examples=1500, deadline=None)
@given(
    st.one_of(
        _valid_cmd(),
        st.builds(_mutated, _valid_cmd(), st.integers(0, 60), st.integers(0, 255), st.integers()),
        st.builds(
            lambda f, t, e, n: cbor2.dumps([f, t, e, n]),
            st.sampled_from([0, 1, 2, True, "1", -1]),
            st.one_of(st.sampled_from(CMDS), st.integers(0, 300)),
            st.one_of(st.text(max_size=40), st.binary(max_size=20)),
            st.one_of(st.binary(min_size=14, max_size=18), st.text(min_size=16, max_size=16)),
        ),
        st.binary(max_size=60),
    )
)
@example(bytes.fromhex("84010a65626d732d3150") + bytes(16))  # "bms-1", ACTIVATE
@example(bytes.fromhex("84010a7818") + b"e" * 24 + b"\x50" + bytes(16))  # 24-byte id
@example(bytes.fromhex("84010a7817") + b"e" * 23 + b"\x50" + bytes(16))  # non-shortest head
@example(bytes.fromhex("84010a62c3a950") + bytes(16))  # "é"
@example(bytes.fromhex("84010a62c0af50") + bytes(16))  # overlong UTF-8: not text
@example(bytes.fromhex("84010a63eda08050") + bytes(16))  # a surrogate: not text
@example(bytes.fromhex("84010a64f490808050") + bytes(16))  # over U+10FFFF: not text
@example(bytes.fromhex("84010a64f090808050") + bytes(16))  # overlong 4-byte form
@example(bytes.fromhex("84010a63e0808050") + bytes(16))  # overlong 3-byte form
@example(bytes.fromhex("84010a64f48fbfbf50") + bytes(16))  # U+10FFFF: text
@example(bytes.fromhex("84010a63ed9fbf50") + bytes(16))  # U+D7FF: text
@example(bytes.fromhex("84010a62c28050") + bytes(16))  # U+0080: text
@example(bytes.fromhex("84010a62e08050") + bytes(16))  # cut sequence
@example(bytes.fromhex("84180a0a6162") + bytes.fromhex("50") + bytes(16))  # fmt 24
@example(bytes.fromhex("84010a616150") + bytes(16) + b"\x00")  # trailing byte
def test_signed_bytes_parser_agrees_with_cbor2(data: bytes) -> None:
    want = oracle_fields(data)
    got = ours(data)
    f = command.fields(data)  # the device's parser alone (no UTF-8 decoding of its own)
    if want is None:
        assert got == codes.E_BAD_MESSAGE, (data.hex(), got)
        assert f is None or len(data) > messages.MAX_CMD, data.hex()
    else:
        assert got == want, data.hex()
        # the device compares the id as bytes and the nonce as bytes
        assert f == (want[1], want[2].encode(), want[3])


def _message(t: int, cmd: bytes, kid: bytes, sig: bytes) -> bytes:
    return cbor2.dumps([t, cmd, kid, sig])


def wire_command(payload: bytes) -> tuple[bytes, bytes, bytes] | int | None:
    try:
        m = wire.parse(payload, True)
    except ProtocolError as e:
        return e.code
    if m[0] not in CMDS:
        return None
    return (bytes(m[1]), bytes(m[2]), bytes(m[3]))


@settings(max_examples=1500, deadline=None)
@given(
    st.one_of(
        st.builds(
            _message,
            st.sampled_from(CMDS),
            st.binary(min_size=1, max_size=96),
            st.binary(min_size=8, max_size=8),
            st.binary(min_size=64, max_size=64),
        ),
        st.builds(
            _mutated,
            st.builds(
                _message,
                st.sampled_from(CMDS),
                st.binary(min_size=0, max_size=100),
                st.binary(min_size=7, max_size=9),
                st.binary(min_size=63, max_size=65),
            ),
            st.integers(0, 120),
            st.integers(0, 255),
            st.integers(),
        ),
        st.builds(
            lambda t, rest: cbor2.dumps([t, *rest]),
            st.sampled_from(CMDS),
            st.lists(st.one_of(st.binary(max_size=70), st.integers(0, 5)), max_size=5),
        ),
        st.binary(min_size=70, max_size=200).map(lambda b: b"\x84\x0a" + b),
    )
)
@example(_message(10, b"\x01", bytes(8), bytes(64)))
@example(_message(10, bytes(23), bytes(8), bytes(64)))
@example(_message(10, bytes(24), bytes(8), bytes(64)))
@example(_message(10, bytes(96), bytes(8), bytes(64)))
@example(_message(10, bytes(97), bytes(8), bytes(64)))
@example(bytes.fromhex("840a5801") + b"\x01" + b"\x48" + bytes(8) + b"\x58\x40" + bytes(64))
def test_message_splitter_agrees_with_the_full_parser(payload: bytes) -> None:
    full = wire_command(payload)
    mine = command.split(payload)
    if mine is not None:
        assert full == mine, payload.hex()
    else:
        assert not isinstance(full, tuple), payload.hex()  # the full parser refuses it too


def test_unsigned_and_short_commands_are_left_to_the_full_parser() -> None:
    for t in CMDS:
        for fields in ([], [0], [b"\x01", bytes(8)]):
            p = cbor2.dumps([t, *fields])
            assert command.split(p) is None
            with pytest.raises(ProtocolError) as ei:
                wire.parse(p)
            assert ei.value.code == codes.E_CMD_AUTH
