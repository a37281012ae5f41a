"""CBOR profile codec against cbor2 (the reference on the host), with hypothesis."""

from __future__ import annotations

import tracemalloc
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from otalink.protocol import cbor, codes
from otalink.protocol.errors import ProtocolError

from tests.vectors.vecio import same

ints = st.integers(min_value=-(2**32), max_value=2**32 - 1)
scalars = st.one_of(
    ints,
    st.booleans(),
    st.none(),
    st.binary(max_size=300),
    st.text(max_size=40),
)


def values(depth: int = 0) -> st.SearchStrategy[Any]:
    if depth >= cbor.MAX_DEPTH:
        return scalars
    return st.one_of(scalars, st.lists(st.deferred(lambda: values(depth + 1)), max_size=16))


@settings(max_examples=300, deadline=None)
@given(values())
def test_roundtrip_both_ways(v: Any) -> None:
    ours = cbor.dumps(v)
    assert ours == cbor2.dumps(v)  # shortest form == cbor2's default (preferred) serialisation
    assert same(cbor2.loads(ours), v)
    assert same(cbor.loads(cbor2.dumps(v)), v)
    buf = bytearray(len(ours) + 5)
    assert cbor.encode_into(v, buf, 5) == len(buf)
    assert bytes(buf[5:]) == ours
    with pytest.raises(ProtocolError) as ei:
        cbor.encode_into(v, bytearray(len(ours) - 1), 0)
    assert ei.value.code == codes.E_TOO_LARGE


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_decode_or_protocol_error(data: bytes) -> None:
    try:
        v = cbor.loads(data)
    except ProtocolError as e:
        assert e.code in (codes.E_BAD_MESSAGE, codes.E_TOO_LARGE)
        return
    # The profile is canonical: whatever decodes re-encodes to exactly the same bytes.
    assert cbor.dumps(v) == data
    assert cbor2.loads(data) == v


@settings(max_examples=200, deadline=None)
@given(values(), st.data())
def test_truncations_and_mutations_are_protocol_errors(v: Any, data: st.DataObject) -> None:
    enc = cbor.dumps(v)
    cut = data.draw(st.integers(0, len(enc) - 1))
    with pytest.raises(ProtocolError):
        cbor.loads(enc[:cut])
    mutated = bytearray(enc)
    i = data.draw(st.integers(0, len(enc) - 1))
    mutated[i] = data.draw(st.integers(0, 255))
    try:
        cbor.loads(bytes(mutated))
    except ProtocolError:
        pass


def test_decode_views_and_positions() -> None:
    data = cbor2.dumps([1, b"abc"]) + cbor2.dumps("x")
    v, pos = cbor.decode(memoryview(data), 0)
    assert isinstance(v[1], memoryview) and bytes(v[1]) == b"abc"
    assert v[1].obj is data  # zero-copy: a view of the input
    v2, pos2 = cbor.decode(data, pos)
    assert v2 == "x" and pos2 == len(data)
    assert isinstance(cbor.loads(b"\x41\x01"), bytes)
    assert isinstance(cbor.loads(b"\x41\x01", copy=False), memoryview)


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (2**32, codes.E_TOO_LARGE),
        (-(2**32) - 1, codes.E_TOO_LARGE),
        (list(range(17)), codes.E_TOO_LARGE),
        ([[[[[1]]]]], codes.E_TOO_LARGE),
        (bytes(8193), codes.E_TOO_LARGE),
        ({1: 2}, codes.E_BAD_MESSAGE),
        (1.5, codes.E_BAD_MESSAGE),
    ],
)
def test_encoder_rejects_outside_profile(value: Any, code: int) -> None:
    with pytest.raises(ProtocolError) as ei:
        cbor.dumps(value)
    assert ei.value.code == code


@pytest.mark.parametrize(
    "data",
    [b"\x5a\xff\xff\xff\xff", b"\x7a\x7f\xff\xff\xff", b"\x9a\xff\xff\xff\xff", b"\x59\xff\xff"],
)
def test_declared_length_is_checked_before_allocating(data: bytes) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError) as ei:
            cbor.loads(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ei.value.code in (codes.E_TOO_LARGE, codes.E_BAD_MESSAGE)
    assert peak < 16384, peak


def test_nonshortest_heads_rejected() -> None:
    for data in (
        b"\x18\x05",
        b"\x19\x00\xff",
        b"\x1a\x00\x00\xff\xff",
        b"\x38\x00",
        b"\x58\x01\x00",
    ):
        with pytest.raises(ProtocolError) as ei:
            cbor.loads(data)
        assert ei.value.code == codes.E_BAD_MESSAGE, data
