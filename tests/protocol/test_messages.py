"""Message builders/parsers, instruction and report bodies, DataView."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from otalink.protocol import codes, messages
from otalink.protocol.errors import ProtocolError

SHA = bytes(range(32))


def instr(**kw: Any) -> bytes:
    args: dict[str, Any] = dict(
        ecu_id="bms-1",
        hw_id="bms-rev-c",
        version="1.4.2",
        release_counter=7,
        image_len=131072,
        sha256=SHA,
        issued=1_790_000_000,
        expires=1_790_086_400,
        target="bms/app-1.4.2.bin",
        kind=messages.KIND_APP,
    )
    args.update(kw)
    return messages.encode_instruction(**args)


def report(**kw: Any) -> bytes:
    args: dict[str, Any] = dict(
        ecu_id="bms-1",
        hw_id="bms-rev-c",
        nonce=bytes(16),
        active_slot=0,
        boot_state=codes.BOOT_NORMAL,
        last_error=codes.OK,
        slots=[[codes.SLOT_CONFIRMED, "1.4.1", 6, 1000, SHA], [codes.SLOT_EMPTY, "", 0, 0, b""]],
        caps=[4096, 16384, 262144, 4096, 256, 10, 0],
        transfer=[codes.PH_IDLE, 0, 0, 0],
        release_floor=6,
        trusted_time=1_790_000_000,
        trial_boots=0,
        cmd_nonce=bytes(range(16)),
        agent_version="0.11.0",
        app=[codes.APP_HEALTHY, 0, 0],
    )
    args.update(kw)
    return messages.encode_report(**args)


def test_instruction_roundtrip_layout() -> None:
    data = instr()
    ref = cbor2.loads(data)
    assert ref[messages.I_FMT] == 1 and ref[messages.I_SHA256] == SHA
    v = messages.decode_instruction(data)
    assert v == ref
    assert v[messages.I_TARGET] == "bms/app-1.4.2.bin"


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        (dict(ecu_id="x" * 33), messages.I_ECU_ID),
        (dict(version=""), messages.I_ECU_ID),
        (dict(sha256=bytes(31)), messages.I_SHA256),
        (dict(kind=2), messages.I_KIND),
        (dict(release_counter=-1), messages.I_RELEASE),
        (dict(target="t" * 65), messages.I_TARGET),
    ],
)
def test_instruction_rejects(kw: dict[str, Any], field: int) -> None:
    with pytest.raises(ProtocolError) as ei:
        instr(**kw)
    assert ei.value.code == codes.E_BAD_INSTRUCTION
    assert ei.value.detail == field


def test_instruction_rejects_wrong_shapes() -> None:
    good = cbor2.loads(instr())
    for bad in (good[:-1], [2, *good[1:]], {"a": 1}, [*good, 0]):
        with pytest.raises(ProtocolError) as ei:
            messages.decode_instruction(cbor2.dumps(bad))
        assert ei.value.code == codes.E_BAD_INSTRUCTION
    with pytest.raises(ProtocolError):
        messages.decode_instruction(bytes(600))


def test_report_roundtrip_and_rejects() -> None:
    v = messages.decode_report(report())
    assert len(v) == messages.REPORT_ITEMS == 16 and v[messages.R_CMD_NONCE] == bytes(range(16))
    # issue 11: the answering agent's version and the application's state
    assert v[messages.R_AGENT_VERSION] == "0.11.0"
    assert v[messages.R_APP] == [codes.APP_HEALTHY, 0, 0]
    assert v[messages.R_PROTO] == codes.PROTOCOL_VERSION == 2
    assert v[messages.R_ECU_ID] == "bms-1"
    assert v[messages.R_CAPS][messages.C_WINDOW] == 16384
    assert v[messages.R_SLOTS][1][messages.S_SHA256] == b""
    for kw in (
        dict(active_slot=2),
        dict(nonce=bytes(15)),
        dict(slots=[[codes.SLOT_EMPTY, "", 0, 0, b""]]),
        dict(caps=[1, 2, 3]),
        dict(transfer=[0, 0, 0, -1]),
        dict(slots=[[codes.SLOT_EMPTY, "", 0, 0, bytes(5)]] * 2),
        dict(cmd_nonce=bytes(15)),
        dict(cmd_nonce="x" * 16),
        dict(agent_version="v" * 33),
        dict(agent_version=b"0.11.0"),
        dict(app=[0, 0]),
        dict(app=[0, 0, -1]),
    ):
        with pytest.raises(ProtocolError) as ei:
            report(**kw)
        assert ei.value.code in (codes.E_BAD_MESSAGE, codes.E_TOO_LARGE), kw


def test_info_carries_report_and_parses() -> None:
    body = report()
    msg = messages.parse(messages.info(body, bytes(64)))
    assert msg == [codes.MSG_INFO, body, bytes(64)]


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1), st.binary(min_size=1, max_size=messages.MAX_DATA))
def test_dataview_agrees_with_parse(offset: int, chunk: bytes) -> None:
    payload = messages.data(offset, chunk)
    dv = messages.DataView()
    mv = memoryview(payload)
    assert dv.parse(mv)
    assert (dv.offset, bytes(dv.data)) == (offset, chunk)
    assert messages.parse(payload) == [codes.MSG_DATA, offset, chunk]
    first = dv.data
    assert dv.parse(mv) and dv.data is first  # cached view reused for the same frame shape


@settings(max_examples=400, deadline=None)
@given(st.binary(min_size=0, max_size=40))
def test_dataview_never_raises_other_errors(data: bytes) -> None:
    payload = b"\x83\x04" + data
    dv = messages.DataView()
    # never raises: a malformed DATA is declined and the full parser (the session's fallback)
    # raises its one code (issue 10; tests/fuzz compares the two paths on both runtimes)
    if not dv.parse(memoryview(payload)):
        with pytest.raises(ProtocolError) as ei:
            messages.parse(payload)
        assert ei.value.code in (codes.E_BAD_MESSAGE, codes.E_TOO_LARGE)
        return
    assert messages.parse(payload) == [codes.MSG_DATA, dv.offset, bytes(dv.data)]


def test_dataview_declines_other_types() -> None:
    assert not messages.DataView().parse(memoryview(messages.ack(1, 2, 3)))
    cmd = messages.encode_command(codes.MSG_ABORT, "bms-1", bytes(16))
    assert not messages.DataView().parse(
        memoryview(messages.command(codes.MSG_ABORT, cmd, bytes(8), bytes(64)))
    )


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_parse_random_payloads(data: bytes) -> None:
    try:
        msg = messages.parse(data)
    except ProtocolError as e:
        assert e.code in (
            codes.E_BAD_MESSAGE,
            codes.E_TOO_LARGE,
            codes.E_UNKNOWN_TYPE,
            codes.E_CMD_AUTH,  # a command of another arity than [type, cmd, keyid, sig]
        )
        return
    assert msg[0] in messages.SPECS


def test_data_into_bounds() -> None:
    with pytest.raises(ProtocolError) as ei:
        messages.data_into(bytearray(20), 0, 0, bytes(20))
    assert ei.value.code == codes.E_TOO_LARGE
    with pytest.raises(ProtocolError):
        messages.data_into(bytearray(9000), 0, 0, bytes(messages.MAX_DATA + 1))
    buf = bytearray(4096)
    n = messages.data_into(buf, 0, 2**32 - 1, bytes(4096 - messages.DATA_OVERHEAD))
    assert n <= 4096


def test_command_bytes_layout_and_rejects() -> None:
    cmd = messages.encode_command(codes.MSG_CONFIRM, "bms-1", bytes(range(16)))
    assert cbor2.loads(cmd) == [messages.CMD_FMT, codes.MSG_CONFIRM, "bms-1", bytes(range(16))]
    assert len(cmd) <= messages.MAX_CMD
    assert messages.decode_command(cmd) == cbor2.loads(cmd)
    payload = messages.command(codes.MSG_CONFIRM, cmd, bytes(8), bytes(64))
    assert messages.parse(payload) == [codes.MSG_CONFIRM, cmd, bytes(8), bytes(64)]
    longest = messages.encode_command(codes.MSG_ABORT, "e" * messages.MAX_ID, bytes(16))
    assert len(longest) <= messages.MAX_CMD  # a command for any ecu_id fits the bound
    bad = [
        [2, 12, "bms-1", bytes(16)],
        [1, 9, "bms-1", bytes(16)],  # RESULT is not a command
        [1, 15, "bms-1", bytes(16)],
        [1, 12, "", bytes(16)],
        [1, 12, "x" * 33, bytes(16)],
        [1, 12, b"bms-1", bytes(16)],
        [1, 12, "bms-1", bytes(15)],
        [1, 12, "bms-1", "n" * 16],
        [1, 12, "bms-1"],
        {"a": 1},
    ]
    for value in bad:
        with pytest.raises(ProtocolError) as ei:
            messages.decode_command(cbor2.dumps(value))
        assert (ei.value.code, ei.value.detail) == (codes.E_BAD_MESSAGE, 0xFF), value
    with pytest.raises(ProtocolError) as ei:
        messages.decode_command(bytes(messages.MAX_CMD + 1))
    assert ei.value.code == codes.E_BAD_MESSAGE
    with pytest.raises(ProtocolError):
        messages.encode_command(codes.MSG_RESULT, "bms-1", bytes(16))


def test_commands_of_another_arity_are_unauthenticated() -> None:
    for t in messages.COMMANDS:
        for fields in ([], [0], [b"\x01", bytes(8)], [b"\x01", bytes(8), bytes(64), 0]):
            with pytest.raises(ProtocolError) as ei:
                messages.parse(cbor2.dumps([t, *fields]))
            assert ei.value.code == codes.E_CMD_AUTH, (t, fields)
            assert ei.value.detail == 0  # not signed


# ---- issue 11: the application channel, DEFER, the receive probe -----------------------------
def test_app_defer_probe_roundtrip_and_bounds() -> None:
    assert messages.parse(messages.app(7, 1, b"soc?")) == [codes.MSG_APP, 7, 1, b"soc?"]
    assert messages.parse(messages.app(0, 0, b"")) == [codes.MSG_APP, 0, 0, b""]
    assert messages.parse(messages.app(255, 2**32 - 1, bytes(256)))[3] == bytes(256)
    assert messages.parse(messages.defer(codes.MSG_BEGIN, 30, "actuator moving")) == [
        codes.MSG_DEFER, codes.MSG_BEGIN, 30, "actuator moving"]  # fmt: skip
    assert messages.parse(messages.probe(1000, SHA, 2, 900)) == [codes.MSG_PROBE, 1000, SHA, 2, 900]
    for payload, code in (
        (messages.app(256, 1, b"x"), codes.E_BAD_MESSAGE),  # channel over 255
        (messages.app(1, 1, bytes(257)), codes.E_TOO_LARGE),
        (cbor2.dumps([codes.MSG_APP, 1, 1, "text"]), codes.E_BAD_MESSAGE),
        (cbor2.dumps([codes.MSG_APP, 1, 1]), codes.E_BAD_MESSAGE),
        (messages.defer(codes.MSG_BEGIN, 30, "r" * 49), codes.E_TOO_LARGE),
        (messages.probe(1000, SHA[:31], 0, 1000), codes.E_BAD_MESSAGE),
        (messages.probe(1000, SHA, 3, 1000), codes.E_BAD_MESSAGE),
    ):
        with pytest.raises(ProtocolError) as ei:
            messages.parse(payload)
        assert ei.value.code == code, payload.hex()


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_parse_app_shortcut_answers_like_the_full_parser(raw: bytes) -> None:
    # the device's APP shortcut (protocol/small.py) takes exactly the valid APPs, no more
    from otalink.protocol import small

    for payload in (raw, b"\x84\x11" + raw[:8] + b"\x50" + raw[8:24]):
        out = [0, 0, 0, 0]
        t = small.parse_app(memoryview(payload), out)
        try:
            full = messages.parse(payload, copy=True)
        except ProtocolError:
            full = None
        if t >= 0:
            assert full == [codes.MSG_APP, out[1], out[2], bytes(out[3])], payload.hex()
        else:
            assert full is None or full[0] != codes.MSG_APP, payload.hex()


_INSTR = bytes(range(200, 256)) * 5  # a 280-byte instruction (a 2-byte bstr head)


def _begin_fields(draw: Any) -> tuple[bytes, list[Any], int, bytes, int, int]:
    # mostly valid fields (the shortcut must take them), each sometimes one step off its bound
    instr = draw(st.sampled_from([_INSTR] * 4 + [_INSTR[:20], _INSTR[:-1], _INSTR + b"x"]))
    kid = st.sampled_from([8, 8, 8, 7, 9]).map(bytes)
    sig = st.sampled_from([64, 64, 64, 63, 65]).map(bytes)
    sigs = draw(st.lists(st.tuples(kid, sig).map(list), max_size=5))
    uint = st.integers(min_value=0, max_value=2**33)
    sha = draw(st.sampled_from([SHA, SHA, SHA[:31], SHA + b"\0"]))
    comp = draw(st.integers(min_value=0, max_value=6))
    return instr, sigs, draw(uint), sha, comp, draw(uint)


@settings(max_examples=600, deadline=None)
@given(st.data(), st.binary(max_size=12), st.integers(min_value=0, max_value=400))
def test_parse_begin_shortcut_answers_like_the_full_parser(
    data: st.DataObject, noise: bytes, at: int
) -> None:
    # the agent's BEGIN-of-the-live-instruction shortcut (protocol/resume.py) takes exactly the
    # valid BEGINs of that instruction, with the full parser's fields, and declines the rest
    from otalink.protocol import resume

    instr, sigs, image_len, sha, comp, wire_len = _begin_fields(data.draw)
    good = cbor2.dumps([codes.MSG_BEGIN, instr, sigs, image_len, sha, comp, wire_len])
    cut = at % (len(good) + 1)
    for payload in (good, good[:cut] + noise + good[cut:], good[:cut], good + noise[:1]):
        out: list[Any] = [0] * 7
        t = resume.parse_begin(memoryview(payload), out, _INSTR)
        try:
            full = messages.parse(payload, copy=True)
        except ProtocolError:
            full = None
        if t >= 0:
            assert full is not None and full[1] == _INSTR, payload.hex()
            assert [full[0], full[3], full[4], full[5], full[6]] == [
                out[0], out[3], bytes(out[4]), out[5], out[6]
            ], payload.hex()  # fmt: skip
        else:
            # declined: not a valid BEGIN of this instruction (the full parser judges it)
            assert full is None or full[0] != codes.MSG_BEGIN or full[1] != _INSTR, payload.hex()


def test_parse_begin_shortcut_takes_every_valid_begin_of_its_instruction() -> None:
    from otalink.protocol import resume

    kid_sig = [bytes(8), bytes(64)]
    for sigs in ([], [kid_sig], [kid_sig] * 4):
        for n in (0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1):
            payload = messages.begin(_INSTR, sigs, n, SHA, 2, n)
            out: list[Any] = [0] * 7
            assert resume.parse_begin(memoryview(payload), out, _INSTR) == codes.MSG_BEGIN
            assert out[3] == n and out[6] == n and bytes(out[4]) == SHA and out[5] == 2
            assert resume.parse_begin(memoryview(payload), out, _INSTR[:-1] + b"\0") == -1
            assert resume.parse_begin(memoryview(payload), out, None) == -1
