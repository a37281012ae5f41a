"""Install instruction format 2 (delta updates): format 1's 11 fields + base_sha256, one codec
for signing and checking (messages.encode_instruction / wire.decode_instruction), and BEGIN's
compression 3 / 4 (a patch raw / in deflate segments)."""

from __future__ import annotations

import cbor2
import pytest
from otalink.protocol import codes, messages, wire
from otalink.protocol.errors import ProtocolError

F1 = ("ecu-1", "hw-1", "2.0.0", 3, 1000, bytes(range(32)), 10, 20, "app-2.bin", 0)
BASE = bytes(range(100, 132))


def _code(data: bytes) -> tuple[int, int]:
    with pytest.raises(ProtocolError) as e:
        wire.decode_instruction(data)
    return e.value.code, e.value.detail


def test_format_2_round_trips_and_format_1_is_unchanged() -> None:
    d1 = messages.encode_instruction(*F1)
    d2 = messages.encode_instruction(*F1, BASE)
    assert cbor2.loads(d1) == [1, *F1]
    assert cbor2.loads(d2) == [2, *F1, BASE]
    v = wire.decode_instruction(d2)
    assert len(v) == 12 and v[messages.I_BASE_SHA256] == BASE and v[0] == messages.INSTR_FMT_DELTA
    assert len(wire.decode_instruction(d1)) == 11


def test_format_and_field_count_must_agree() -> None:
    bad = codes.E_BAD_INSTRUCTION
    assert _code(cbor2.dumps([2, *F1])) == (bad, 0)  # fmt 2 without a base
    assert _code(cbor2.dumps([1, *F1, BASE])) == (bad, 0)  # fmt 1 with one
    assert _code(cbor2.dumps([3, *F1, BASE])) == (bad, 0)
    assert _code(cbor2.dumps([2, *F1, BASE, 0])) == (bad, 0xFF)  # 13 items
    for b in (BASE[:31], BASE + b"x", "text", 5):
        assert _code(cbor2.dumps([2, *F1, b])) == (bad, messages.I_BASE_SHA256)


def test_encoder_refuses_a_bad_base() -> None:
    with pytest.raises(ProtocolError):
        messages.encode_instruction(*F1, BASE[:16])


def test_begin_accepts_the_patch_compressions() -> None:
    instr = messages.encode_instruction(*F1, BASE)
    for comp in (codes.COMP_PATCH, codes.COMP_PATCH_DEFLATE_SEG):
        m = messages.parse(messages.begin(instr, [], 1000, bytes(32), comp, 77))
        assert m[5] == comp
    with pytest.raises(ProtocolError) as e:
        messages.parse(messages.begin(instr, [], 1000, bytes(32), 5, 77))
    assert e.value.code == codes.E_BAD_MESSAGE
    # a probe is never a patch
    with pytest.raises(ProtocolError):
        messages.parse(messages.probe(1000, bytes(32), codes.COMP_PATCH, 77))


def test_codes() -> None:
    assert (codes.E_BASE_MISMATCH, codes.E_PATCH) == (44, 45)
    assert (codes.COMP_PATCH, codes.COMP_PATCH_DEFLATE_SEG, codes.CAP_PATCH) == (3, 4, 2)
