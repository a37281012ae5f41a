"""Odd input to the embedded update server (issue 10, defects 6 and 7): reports that cannot be
stored and served faithfully, numbers that do not parse, stalled clients, symlinks out of the
served root. Every answer is a clean 4xx problem+json with a stable code (never a dropped
connection or a traceback), and one bad stored row never breaks a vehicle's listing."""

from __future__ import annotations

import base64
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from otalink.host.tools.server.app import ServerHandle, start_server
from otalink.host.tools.server.ranges import parse_range
from otalink.host.tools.server.reports import ReportInvalid, decode_cbor, decode_json

BODY = bytes(range(256)) * 40  # 10240 bytes
PROBLEM = "application/problem+json"


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[ServerHandle]:
    root = tmp_path / "root"
    (root / "image" / "targets").mkdir(parents=True)
    (root / "image" / "targets" / "f.bin").write_bytes(BODY)
    with start_server(root, test_controls=True) as s:
        s.state.timeout_s = 1.0  # a stalled client is released after 1 s
        yield s


def raw(srv: ServerHandle, request: bytes, timeout: float = 10.0) -> bytes:
    """Send ``request`` as is; return everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=timeout) as s:
        s.sendall(request)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def parse_response(data: bytes) -> tuple[int, dict[str, str], bytes]:
    assert data, "no response at all"
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    return status, headers, body


def strict_json(data: bytes) -> Any:
    """Standard JSON only: NaN / Infinity are refused (as a browser's JSON.parse would)."""

    def no_constant(name: str) -> Any:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(data.decode("utf-8"), parse_constant=no_constant)


def problem(data: bytes, status: int, code: str) -> dict[str, Any]:
    got, headers, body = parse_response(data)
    assert got == status, data[:400]
    assert headers["content-type"].startswith(PROBLEM), headers
    doc: dict[str, Any] = strict_json(body)
    assert doc["code"] == code and doc["status"] == status and doc["type"].endswith(code), doc
    assert doc["title"] and doc["detail"]
    assert b"Traceback" not in data
    return doc


def post(srv: ServerHandle, body: bytes, ctype: str, vehicle: str = "V1") -> bytes:
    head = (
        f"POST /reports/{vehicle} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return raw(srv, head.encode() + body)


def listing(srv: ServerHandle, vehicle: str = "V1") -> list[dict[str, Any]]:
    data = raw(
        srv, f"GET /reports/{vehicle} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    )
    status, headers, body = parse_response(data)
    assert status == 200, data[:400]
    assert headers["content-type"] == "application/json"
    out: list[dict[str, Any]] = strict_json(body)
    return out


# ---- defect 6: reports that cannot be stored and served faithfully ---------------------------
_DEEP = 200
BAD_CBOR = {
    "datetime (tag 1)": bytes.fromhex("c11a5f5e1000"),
    "datetime (tag 0)": cbor2.dumps(
        {"at": cbor2.loads(bytes.fromhex("c074323032302d30332d30315430303a30303a30305a"))}
    ),
    "set (tag 258)": bytes.fromhex("a16173d90102820102"),
    "decimal (tag 4)": bytes.fromhex("82c482200f01"),
    "bignum (tag 2)": bytes.fromhex("c249010000000000000000"),
    "unknown tag": bytes.fromhex("d9ffff01"),
    "self-described (tag 55799)": bytes.fromhex("d9d9f7a0"),
    "shared reference cycle": bytes.fromhex("d81c81d81d00"),
    "undefined": bytes.fromhex("a16175f7"),
    "simple value 16": bytes.fromhex("81f0"),
    "NaN": bytes.fromhex("81f97e00"),
    "Infinity (double)": bytes.fromhex("81fb7ff0000000000000"),
    "integer map key": bytes.fromhex("a10101"),
    "null map key": bytes.fromhex("a1f6f6"),
    "duplicate map key": bytes.fromhex("a2616101616102"),
    "too deep": b"\x81" * _DEEP + b"\x00",
    "invalid UTF-8 text": bytes.fromhex("62c080"),
    "trailing bytes": bytes.fromhex("0000"),
    "truncated": bytes.fromhex("83010203")[:3],
}
BAD_JSON = {
    "NaN": b'{"x": NaN}',
    "Infinity": b"[Infinity]",
    "-Infinity": b"[-Infinity]",
    "overflowing float": b"[1e400]",
    "duplicate key": b'{"a": 1, "a": 2}',
    "lone surrogate": b'["\\ud800"]',
    "too deep": b"[" * _DEEP + b"]" * _DEEP,
    "not UTF-8": b'["\xff"]',
    "UTF-16": '["x"]'.encode("utf-16"),
    "4301 digits": b"[" + b"9" * 4301 + b"]",
    "not JSON": b"{nope",
}


@pytest.mark.parametrize("name", sorted(BAD_CBOR))
def test_cbor_report_that_cannot_be_served_is_refused(srv: ServerHandle, name: str) -> None:
    doc = problem(post(srv, BAD_CBOR[name], "application/cbor"), 400, "report_invalid")
    assert doc["reason"] and isinstance(doc["reason"], str)
    assert listing(srv) == []  # nothing stored, the listing still answers


@pytest.mark.parametrize("name", sorted(BAD_JSON))
def test_json_report_that_cannot_be_served_is_refused(srv: ServerHandle, name: str) -> None:
    problem(post(srv, BAD_JSON[name], "application/json"), 400, "report_invalid")
    assert listing(srv) == []


def test_faithful_reports_are_stored_and_served_back(srv: ServerHandle) -> None:
    doc_json = {"a": [1, -2, 2**64 - 1, 1.5, -0.25, True, False, None, "ü€😀"], "b": {"": ""}}
    doc_cbor = [1, "VIN", b"\x00\xff", {"k": [None, True, 2.5, -(2**64)]}, ""]
    status, _, body = parse_response(
        post(
            srv,
            json.dumps(doc_json, ensure_ascii=False).encode(),
            "application/json; charset=utf-8",
        )
    )
    assert status == 201 and strict_json(body)["id"] == 1
    status, _, _ = parse_response(post(srv, cbor2.dumps(doc_cbor), "application/cbor"))
    assert status == 201
    # indefinite-length items are plain CBOR: accepted and rendered like definite ones
    status, _, _ = parse_response(
        post(srv, bytes.fromhex("9f01bf6161f5ff7f61616162ffff"), "application/cbor")
    )
    assert status == 201
    got = [r["report"] for r in listing(srv)]
    assert got == [
        [1, {"a": True}, "ab"],
        [1, "VIN", "00ff", {"k": [None, True, 2.5, -(2**64)]}, ""],
        doc_json,
    ]


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
_PLAIN = st.recursive(
    _SCALARS | st.binary(max_size=20),
    lambda kids: (
        st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=5), kids, max_size=5)
    ),
    max_leaves=25,
)


def _rendered(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, list):
        return [_rendered(x) for x in v]
    if isinstance(v, dict):
        return {k: _rendered(x) for k, x in v.items()}
    return v


@settings(max_examples=300, deadline=None)
@given(_PLAIN)
def test_cbor_decoder_renders_every_plain_value_faithfully(value: Any) -> None:
    """Our strict decoder agrees with cbor2's encoding of every plain value (bytes as hex)."""
    assert decode_cbor(cbor2.dumps(value)) == _rendered(value)


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        _SCALARS,
        lambda k: st.lists(k, max_size=5) | st.dictionaries(st.text(max_size=5), k, max_size=5),
        max_leaves=25,
    )
)
def test_json_decoder_keeps_every_plain_value(value: Any) -> None:
    assert decode_json(json.dumps(value).encode()) == value


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=64))
def test_decoders_only_raise_report_invalid(body: bytes) -> None:
    for decode in (decode_cbor, decode_json):
        try:
            value = decode(body)
        except ReportInvalid as exc:
            assert exc.reason and exc.detail
        else:
            json.dumps(value, allow_nan=False)  # whatever is accepted is standard JSON


def _store_raw(srv: ServerHandle, vehicle: str, ctype: str, body: bytes) -> None:
    """Write a row the way an older server would have (no validation at all)."""
    db = sqlite3.connect(srv.state.reports.path)
    with db:
        db.execute(
            "INSERT INTO reports (vehicle, received, content_type, body) VALUES (?,?,?,?)",
            (vehicle, time.time(), ctype, body),
        )
    db.close()


def test_one_bad_stored_row_never_breaks_the_listing(srv: ServerHandle) -> None:
    good = {"vehicle_id": "V2", "ok": True}
    assert parse_response(post(srv, json.dumps(good).encode(), "application/json", "V2"))[0] == 201
    bad_rows = [
        ("application/cbor", BAD_CBOR["datetime (tag 1)"]),
        ("application/cbor", BAD_CBOR["shared reference cycle"]),
        ("application/cbor", BAD_CBOR["undefined"]),
        ("application/json", BAD_JSON["NaN"]),
        ("application/json", b"\xff\xfe garbage"),
        ("text/plain", b"hello"),
    ]
    for ctype, body in bad_rows:
        _store_raw(srv, "V2", ctype, body)
    assert parse_response(post(srv, cbor2.dumps([2, "V2"]), "application/cbor", "V2"))[0] == 201
    rows = listing(srv, "V2")  # strict JSON: no NaN, no failure
    assert len(rows) == 2 + len(bad_rows)
    assert rows[0]["report"] == [2, "V2"] and rows[-1]["report"] == good
    for row, (ctype, body) in zip(rows[1:-1], reversed(bad_rows), strict=True):
        assert row["report"] is None and row["content_type"] == ctype
        assert row["error"]["code"] == "report_unrenderable" and row["error"]["reason"]
        assert base64.b64decode(row["body_b64"]) == body  # nothing is lost
    counts = strict_json(
        parse_response(raw(srv, b"GET /reports HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))[
            2
        ]
    )
    assert counts == {"V2": 2 + len(bad_rows)}


# ---- defect 7: numbers, stalls, symlinks ------------------------------------------------------
def _get(srv: ServerHandle, path: str, *headers: str) -> bytes:
    extra = "".join(h + "\r\n" for h in headers)
    return raw(
        srv, f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n".encode("latin-1")
    )


@pytest.mark.parametrize(
    ("header", "status", "first", "last"),
    [
        ("bytes=" + "9" * 5000 + "-", 416, None, None),
        ("bytes=0-" + "9" * 5000, 206, 0, len(BODY) - 1),
        ("bytes=-" + "9" * 5000, 206, 0, len(BODY) - 1),
        ("bytes=" + "0" * 5000 + "5-9", 206, 5, 9),
        ("bytes=²-", 200, 0, len(BODY) - 1),  # not a number: the header is ignored
        ("bytes=1-²", 200, 0, len(BODY) - 1),
        ("bytes=-²", 200, 0, len(BODY) - 1),
    ],
)
def test_odd_range_numbers(
    srv: ServerHandle, header: str, status: int, first: int | None, last: int | None
) -> None:
    got, headers, body = parse_response(_get(srv, "/image/targets/f.bin", f"Range: {header}"))
    assert got == status
    if status == 416:
        assert headers["content-range"] == f"bytes */{len(BODY)}"
    else:
        assert first is not None and last is not None
        assert body == BODY[first : last + 1]


def test_parse_range_never_raises() -> None:
    for header in (
        "bytes=" + "1" * 10_000 + "-",
        "bytes=-" + "1" * 10_000,
        "bytes=²-³",
        "bytes=٣-",
    ):
        parse_range(header, 100)
    assert parse_range("bytes=٣-", 100) is None  # only ASCII digits are digits here


@pytest.mark.parametrize(
    ("length", "status", "code"),
    [
        ("²", 400, "bad_content_length"),
        ("¹²", 400, "bad_content_length"),
        ("9" * 5000, 413, "report_too_large"),
        ("-1", 400, "bad_content_length"),
        ("+5", 400, "bad_content_length"),
        ("0x10", 400, "bad_content_length"),
        ("1_0", 400, "bad_content_length"),
        (str((1 << 20) + 1), 413, "report_too_large"),
    ],
)
def test_odd_content_length(srv: ServerHandle, length: str, status: int, code: str) -> None:
    head = f"POST /reports/V1 HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n"
    problem(raw(srv, head.encode("latin-1") + b"{}"), status, code)


def test_conflicting_content_lengths_refused(srv: ServerHandle) -> None:
    head = (
        b"POST /reports/V1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"
    )
    problem(raw(srv, head), 400, "bad_content_length")
    head = b"POST /reports/V1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    head += b"2\r\n{}\r\n0\r\n\r\n"
    problem(raw(srv, head), 411, "length_required")


def test_malformed_control_refused(srv: ServerHandle) -> None:
    for body in (
        b'["offline"]',
        b'{"rate_bps": "fast"}',
        b'{"rate_bps": -5}',
        b'{"offline": 1}',
        b'{"rate_bps": ' + b"9" * 5000 + b"}",
    ):
        head = f"POST /_control HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
        problem(raw(srv, head.encode() + body), 400, "bad_control")
    assert srv.state.rate_bps is None and srv.state.offline is False


def _wait_closed(s: socket.socket, within: float) -> bytes:
    """Read until the server closes; fail if it has not within ``within`` seconds."""
    s.settimeout(within)
    out = b""
    try:
        while chunk := s.recv(65536):
            out += chunk
    except TimeoutError:
        pytest.fail(f"the server still holds the connection after {within} s: {out[:200]!r}")
    return out


def test_stalled_upload_is_released(srv: ServerHandle) -> None:
    with socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.sendall(b"POST /reports/V1 HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        t0 = time.monotonic()
        out = _wait_closed(s, 5.0)
    assert time.monotonic() - t0 < 5.0
    problem(out, 408, "timeout")
    assert listing(srv) == []


def test_stalled_request_head_is_released(srv: ServerHandle) -> None:
    with socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.sendall(b"GET /image/targets/f.bin HTTP/1.1\r\nHost: x\r\n")  # never ends
        _wait_closed(s, 5.0)
    status, _, body = parse_response(_get(srv, "/healthz"))
    assert status == 200 and strict_json(body) == {"ok": True}


def test_symlinks_out_of_the_root_are_not_served(srv: ServerHandle, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    targets = srv.state.root / "image" / "targets"
    os.symlink(outside / "secret.txt", targets / "leak.bin")
    os.symlink(outside, targets / "leakdir")
    os.symlink("../../../outside/secret.txt", targets / "relleak.bin")
    os.symlink(targets / "f.bin", targets / "alias.bin")  # inside the root: fine
    os.symlink(targets / "missing.bin", targets / "dangling.bin")
    for path in ("leak.bin", "leakdir/secret.txt", "relleak.bin", "dangling.bin"):
        doc = problem(_get(srv, f"/image/targets/{path}"), 404, "not_found")
        assert "secret" not in json.dumps(doc)
    status, _, body = parse_response(_get(srv, "/image/targets/alias.bin"))
    assert status == 200 and body == BODY


@pytest.mark.parametrize(
    "path", ["/image/%00x", "/" + "a" * 5000, "/image/targets/f.bin%2f..%2f..%2f", "/%ff%fe"]
)
def test_odd_paths_get_clean_answers(srv: ServerHandle, path: str) -> None:
    status, headers, body = parse_response(_get(srv, path))
    assert status in (404, 414), (status, body[:200])
    if status == 404:
        assert headers["content-type"].startswith(PROBLEM)


def test_errors_are_problem_json(srv: ServerHandle) -> None:
    problem(_get(srv, "/nothing"), 404, "not_found")
    problem(_get(srv, "/reports/bad%20id"), 400, "bad_vehicle")
    problem(post(srv, b"x", "text/plain"), 415, "unsupported_media_type")
