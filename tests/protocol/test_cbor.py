"""CBOR profile codec against cbor2 (the reference on the host), with hypothesis."""

from __future__ import annotations

import re
import tracemalloc
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from otalink.protocol import cbor, codes, hotpath, messages, wire
from otalink.protocol.errors import ProtocolError

from tests.fuzz import cases, runner
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


# ---- text must be valid UTF-8 (issue 10, defect 2; MicroPython twin in mp_test_fuzz.py) ------
def _code(data: bytes) -> tuple[int, int] | None:
    try:
        cbor.loads(data)
    except ProtocolError as e:
        return (e.code, e.detail)
    return None


def test_utf8_table_agrees_with_cpythons_strict_decoder() -> None:
    table = cases.utf8()
    assert sum(ok for _, ok in table) >= 30 and sum(not ok for _, ok in table) >= 60
    for b, ok in table:
        try:
            b.decode("utf-8")
        except UnicodeDecodeError:
            assert not ok, b
        else:
            assert ok, b


def test_text_utf8_sweep_against_rfc3629() -> None:
    # the reference (cases.utf8_valid) is RFC 3629's table; CPython's decoder agrees with it,
    # and so does the codec, on every short sequence (MicroPython twin in mp_test_fuzz.py)
    n = 0
    for b in cases.utf8_sweep():
        n += 1
        try:
            b.decode("utf-8")
            cpython = True
        except UnicodeDecodeError:
            cpython = False
        ok = cases.utf8_valid(b)
        assert cpython == ok, b.hex()
        assert (_code(cases.tstr(b)) is None) == ok, b.hex()
    assert n > 79_000


@pytest.mark.parametrize(("raw", "ok"), cases.utf8(), ids=lambda v: getattr(v, "hex", v))
def test_text_strings_must_be_valid_utf8(raw: bytes, ok: bool) -> None:
    item = cases.tstr(raw)
    for prefix in (b"", b"\x82\x0f", b"\x83\x01\x81"):
        data = prefix + item + (b"\x00" if prefix == b"\x83\x01\x81" else b"")
        if ok:
            assert _code(data) is None, data.hex()
        else:
            # E_BAD_MESSAGE at the text's head, whatever follows it
            assert _code(data) == (codes.E_BAD_MESSAGE, len(prefix)), data.hex()


# ---- one input, one code (issue 10, defect 3) --------------------------------------------------
TAILS = [b"", b"\x00", bytes(2), bytes(4), bytes(8), b"\xff" * 8, b"\x01" * 9]


@pytest.mark.parametrize("ib", range(256), ids=lambda ib: f"{ib:02x}")
def test_every_initial_byte_decided_as_the_profile_table_says(ib: int) -> None:
    # docs/protocol.md section 3: the initial byte alone decides maps, tags, the major-7 values
    # other than false/true/null, reserved and indefinite heads (E_BAD_MESSAGE) and 64-bit
    # arguments (E_TOO_LARGE), before anything that follows it is looked at.
    major, ai = ib >> 5, ib & 31
    if major in (5, 6) or (major == 7 and ib not in (0xF4, 0xF5, 0xF6)) or 28 <= ai <= 31:
        want: int | None = codes.E_BAD_MESSAGE
    elif ai == 27:
        want = codes.E_TOO_LARGE
    else:
        return  # decided by the argument (shortest form, bounds, truncation): tests above
    for tail in TAILS:
        for prefix in (b"", b"\x83\x04\x00", b"\x82\x0f"):
            data = prefix + bytes([ib]) + tail
            assert _code(data) == (want, len(prefix)), data.hex()


def test_maps_and_tags_with_64_bit_arguments_are_bad_message() -> None:
    assert _code(b"\xdb") == (codes.E_BAD_MESSAGE, 0)
    assert _code(b"\xbb" + bytes(8)) == (codes.E_BAD_MESSAGE, 0)
    assert _code(b"\x1b" + bytes(8)) == (codes.E_TOO_LARGE, 0)


@pytest.mark.parametrize("hexdata", cases.MALFORMED_DATA)
def test_data_fast_path_answers_what_the_full_parser_answers(hexdata: str) -> None:
    payload = bytearray.fromhex(hexdata)
    with pytest.raises(ProtocolError) as full:
        wire.parse(memoryview(payload))
    with pytest.raises(ProtocolError) as fast:
        runner.fast_path(hotpath.DataView(), [0] * 8, memoryview(payload))
    assert (fast.value.code, fast.value.detail) == (full.value.code, full.value.detail)


def test_instruction_with_invalid_utf8_version_is_refused() -> None:
    instr = bytearray(
        messages.encode_instruction("ecu", "hw", "2.0.0", 2, 10, bytes(32), 0, 1, "t", 0)
    )
    i = instr.find(b"\x652.0.0")
    instr[i + 1 : i + 6] = b"2.\xc0\x80."  # an overlong NUL, same length
    with pytest.raises(ProtocolError) as ei:
        wire.decode_instruction(bytes(instr))
    assert (ei.value.code, ei.value.detail) == (codes.E_BAD_INSTRUCTION, 0xFF)


@pytest.mark.parametrize("bad", [b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"], ids=bytes.hex)
def test_device_refuses_a_signed_instruction_with_invalid_utf8(
    bad: bytes, micropython: str, mpy_tree: Path, tmp_path: Path
) -> None:
    # The consequence of defect 2 on the real agent (MicroPython, 64k, pty): the version of an
    # instruction it accepted came back in every INFO/STATUS, which the host could not decode.
    from tests.device_session._agent import Ecu, app_bundle

    image = app_bundle("2.0.0")
    ecu = Ecu(tmp_path, micropython, mpy_tree)
    try:
        ecu.start()
        ecu.hello()
        good = ecu.instruction(image, version="2.0.0" + "x" * (len(bad) - 1))
        i = good.find(b"2.0.0")
        instr = good[:i] + b"2.0." + bad + good[i + 4 + len(bad) :]
        assert len(instr) == len(good)
        r = ecu.begin(image, instr=instr)  # signed by the Director key the agent trusts
        assert r[:2] == [codes.MSG_ERROR, codes.E_BAD_INSTRUCTION], r
        # nothing was started, and the reports still decode on the host
        body, _raw, _sig = ecu.status()
        assert body[messages.R_TRANSFER][messages.T_PHASE] != codes.PH_RECEIVING
        assert all(s[messages.S_VERSION] != "2.0.0" for s in body[messages.R_SLOTS])
    finally:
        ecu.close()


def _profile_table() -> list[tuple[set[int], str]]:
    """docs/protocol.md section 3's table: (initial bytes, last column) per row."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    sec = doc[doc.index("## 3. CBOR profile") : doc.index("## 4. Messages")]
    rows = []
    for line in sec.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("0x"):
            continue
        ibs: set[int] = set()
        for part in re.split(r",|/", cells[0]):
            m = re.match("\\s*0x([0-9a-f]{2})(?:\u20130x([0-9a-f]{2}))?", part)
            assert m, (line, part)
            lo = int(m.group(1), 16)
            ibs.update(range(lo, int(m.group(2) or m.group(1), 16) + 1))
        rows.append((ibs, cells[2]))
    return rows


def test_profile_table_partitions_the_initial_bytes_and_the_code_follows_it() -> None:
    rows = _profile_table()
    seen: list[int] = sorted(ib for ibs, _ in rows for ib in ibs)
    assert seen == list(range(256))  # every initial byte in exactly one row
    decided = 0
    for ibs, last in rows:
        m = re.match(r"`(E_[A-Z_]+)`, by the initial byte alone", last)
        if not m:
            continue
        want = getattr(codes, m.group(1))
        for ib in ibs:
            decided += 1
            for tail in TAILS:
                for prefix in (b"", b"\x83\x04\x00"):
                    data = prefix + bytes([ib]) + tail
                    assert _code(data) == (want, len(prefix)), data.hex()
    assert decided == 5 + 20 + 64 + 29  # 64-bit, reserved/indefinite, maps/tags, major 7


def test_device_answers_malformed_data_like_the_full_parser(
    micropython: str, mpy_tree: Path, tmp_path: Path
) -> None:
    # The session's dispatch on the real agent (MicroPython, 64k, mid-transfer): DataView, then
    # the full parser for what it declines; each malformed DATA gets wire.parse's code and detail
    # and changes nothing in the transfer.
    from tests.device_session._agent import Ecu, app_bundle

    image = app_bundle("2.0.0", pad=6000)
    ecu = Ecu(tmp_path, micropython, mpy_tree)
    try:
        ecu.start()
        ecu.hello()
        assert ecu.begin(image)[:2] == [codes.MSG_ACK, 0]
        half = len(image) // 2
        assert ecu.send_data(image[:half], 0) == half
        for h in cases.MALFORMED_DATA:
            payload = bytes.fromhex(h)
            with pytest.raises(ProtocolError) as ei:
                wire.parse(payload)
            r = ecu.request(payload)
            assert r[0] == codes.MSG_ERROR, (h, r)
            assert (r[1], r[2]) == (ei.value.code, ei.value.detail), (h, r)
        assert ecu.send_data(image, half) == len(image)
        r = ecu.request(messages.end(len(image)), timeout=30)
        assert r[:4] == [codes.MSG_RESULT, codes.MSG_END, codes.OK, 0], r
    finally:
        ecu.close()
