# Golden vectors under MicroPython (the same files tests/protocol/test_vectors.py reads).
import sys

sys.path.append("tests/vectors")
import vecio
from otalink.protocol import cbor, codes, frame, messages, resume, small
from otalink.protocol.errors import ProtocolError


def build(msg):
    t = msg[0]
    f = msg[1:]
    if t == codes.MSG_HELLO:
        return messages.hello(f[1], f[2], f[0])
    if t in messages.COMMANDS:
        return messages.command(t, *f)
    table = {
        codes.MSG_INFO: messages.info,
        codes.MSG_BEGIN: messages.begin,
        codes.MSG_DATA: messages.data,
        codes.MSG_ACK: messages.ack,
        codes.MSG_STATUS: messages.status,
        codes.MSG_PROGRESS: messages.progress,
        codes.MSG_END: messages.end,
        codes.MSG_RESULT: messages.result,
        codes.MSG_ERROR: messages.error,
        codes.MSG_STATUS_REQ: messages.status_req,
        codes.MSG_APP: messages.app,
        codes.MSG_DEFER: messages.defer,
        codes.MSG_PROBE: messages.probe,
    }
    return table[t](*f)


def test_messages():
    rows = vecio.rows("messages.hex")
    assert len(rows) >= 20
    for name, payload_hex, frame_hex, expected_json in rows:
        payload = vecio.unhex(payload_hex)
        expected = vecio.parse_json(expected_json)
        assert build(expected) == payload, name
        got = vecio.norm(messages.parse(payload))
        assert vecio.same(got, expected), (name, got)
        assert frame.frame(payload) == vecio.unhex(frame_hex), name
        p = frame.FrameParser(codes.MAX_PAYLOAD_ABS)
        assert p.feed_all(vecio.unhex(frame_hex)) == [payload], name
        if expected[0] == codes.MSG_APP:
            # the device's APP shortcut (small.py) takes every APP vector as the parser does
            out = [0, 0, 0, 0]
            assert small.parse_app(memoryview(payload), out) == codes.MSG_APP, name
            assert out[1:3] == expected[1:3] and bytes(out[3]) == expected[3], name
        if expected[0] == codes.MSG_BEGIN:
            # the agent's resume shortcut (resume.py) takes every BEGIN vector of its instruction
            out = [0] * 7
            mv = memoryview(payload)
            assert resume.parse_begin(mv, out, bytes(expected[1])) == codes.MSG_BEGIN, name
            assert out[3] == expected[3] and bytes(out[4]) == expected[4], name
            assert out[5:7] == expected[5:7], name
            assert resume.parse_begin(mv, out, bytes(expected[1]) + b"x") == -1, name
        if expected[0] == codes.MSG_DATA:
            dv = messages.DataView()
            assert dv.parse(memoryview(payload)), name
            assert dv.offset == expected[1] and bytes(dv.data) == expected[2], name
            buf = bytearray(len(payload))
            assert messages.data_into(buf, 0, expected[1], expected[2]) == len(payload)
            assert bytes(buf) == payload, name


def test_bad_messages():
    rows = vecio.rows("bad_messages.hex")
    for name, payload_hex, code in rows:
        try:
            messages.parse(vecio.unhex(payload_hex))
        except ProtocolError as e:
            assert e.code == int(code), (name, e.code)
        else:
            raise AssertionError("accepted " + name)


def test_rfc8949_examples():
    for row in vecio.rows("cbor_rfc8949.hex"):
        data = vecio.unhex(row[0])
        if row[1] == "ok":
            value = vecio.parse_json(row[2])
            assert vecio.same(vecio.norm(cbor.loads(data)), value), row
            assert cbor.dumps(value) == data, row
        else:
            try:
                cbor.loads(data)
            except ProtocolError as e:
                assert e.code == int(row[2]), (row, e.code)
            else:
                raise AssertionError("accepted " + row[0])


def test_frame_streams():
    for name, stream_hex, pays, crc_errors, dropped, max_payload in vecio.rows("frames.hex"):
        stream = vecio.unhex(stream_hex)
        expected = [vecio.unhex(p) for p in pays.split(",") if p]
        for chunk in (1, 7, 100000):
            p = frame.FrameParser(int(max_payload))
            got = []
            for i in range(0, len(stream), chunk):
                got += p.feed_all(stream[i : i + chunk])
            assert got == expected, (name, chunk)
            assert p.frames == len(expected), name
            assert p.crc_errors == int(crc_errors), name
            assert p.dropped_bytes == int(dropped), (name, p.dropped_bytes)
            assert p.buffered() == 0, name


def test_decode_returns_views():
    data = cbor.dumps([1, b"abc", "t"])
    v = cbor.loads(data)
    assert isinstance(v[1], memoryview) and bytes(v[1]) == b"abc"
    assert v[2] == "t"


def test_signed_command_vectors_on_the_device_path():
    # The commands in messages.hex are signed (pynacl) by the key of seed 00..1f for ECU "bms-1"
    # over the nonce 00..0f: the device's own parser and ed25519 accept them, and refuse them
    # for another ECU, another nonce or another key.
    from otalink.device import ed25519
    from otalink.protocol import command

    pub = ed25519.SigningKey(bytes(range(32))).public
    nonce = bytes(range(16))
    n = 0
    for name, payload_hex, _frame_hex, _expected in vecio.rows("messages.hex"):
        p = vecio.unhex(payload_hex)
        if p[1] not in messages.COMMANDS:
            continue
        n += 1
        assert command.check([pub], memoryview(p), "bms-1", nonce, ed25519.verify) == 0, name
        for args, code in (
            (([pub], "bms-2", nonce), codes.E_CMD_TARGET),
            (([pub], "bms-1", bytes(16)), codes.E_CMD_REPLAY),
            (([bytes(32)], "bms-1", nonce), codes.E_CMD_AUTH),
        ):
            try:
                command.check(args[0], memoryview(p), args[1], args[2], ed25519.verify)
            except ProtocolError as e:
                assert e.code == code, (name, e.code)
            else:
                raise AssertionError("accepted " + name)
    assert n == len(messages.COMMANDS)
