# Golden vectors under MicroPython (the same files tests/protocol/test_vectors.py reads).
import sys

sys.path.append("tests/vectors")
import vecio
from otalink.protocol import cbor, codes, frame, messages
from otalink.protocol.errors import ProtocolError


def build(msg):
    t = msg[0]
    f = msg[1:]
    if t == codes.MSG_HELLO:
        return messages.hello(f[1], f[2], f[0])
    table = {
        codes.MSG_INFO: messages.info,
        codes.MSG_BEGIN: messages.begin,
        codes.MSG_DATA: messages.data,
        codes.MSG_ACK: messages.ack,
        codes.MSG_STATUS: messages.status,
        codes.MSG_PROGRESS: messages.progress,
        codes.MSG_END: messages.end,
        codes.MSG_RESULT: messages.result,
        codes.MSG_ACTIVATE: messages.activate,
        codes.MSG_REBOOT: messages.reboot,
        codes.MSG_CONFIRM: messages.confirm,
        codes.MSG_REVERT: messages.revert,
        codes.MSG_ABORT: messages.abort,
        codes.MSG_ERROR: messages.error,
        codes.MSG_STATUS_REQ: messages.status_req,
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
