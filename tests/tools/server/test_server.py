"""The embedded update server: Range semantics, reports in SQLite, loopback binding, controls."""

from __future__ import annotations

import http.client
import json
import os
import queue
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import cbor2
import pytest
import urllib3
from otalink.host.cli import main as cli_main
from otalink.host.tools.server.app import ServerHandle, start_server
from otalink.host.tools.server.ranges import parse_range

BODY = bytes(range(256)) * 40  # 10240 bytes


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[ServerHandle]:
    root = tmp_path / "root"
    (root / "image" / "targets").mkdir(parents=True)
    (root / "image" / "targets" / "f.bin").write_bytes(BODY)
    with start_server(root, test_controls=True) as s:
        yield s


def get(url: str, **headers: str) -> urllib3.BaseHTTPResponse:
    return urllib3.request("GET", url, headers=headers, retries=False, redirect=False)


@pytest.mark.parametrize(
    ("header", "status", "first", "last"),
    [
        ("bytes=0-99", 206, 0, 99),
        ("bytes=10000-", 206, 10000, 10239),
        ("bytes=-40", 206, 10200, 10239),
        ("bytes=10200-99999", 206, 10200, 10239),
        ("bytes=0-1,5-6", 200, 0, 10239),  # several ranges: whole file
        ("items=0-1", 200, 0, 10239),  # unknown unit: ignored
    ],
)
def test_range_requests(srv: ServerHandle, header: str, status: int, first: int, last: int) -> None:
    r = get(f"{srv.url}/image/targets/f.bin", Range=header)
    assert r.status == status
    assert r.data == BODY[first : last + 1]
    if status == 206:
        assert r.headers["Content-Range"] == f"bytes {first}-{last}/{len(BODY)}"
    assert r.headers["Accept-Ranges"] == "bytes"


def test_unsatisfiable_range_416(srv: ServerHandle) -> None:
    r = get(f"{srv.url}/image/targets/f.bin", Range=f"bytes={len(BODY)}-")
    assert r.status == 416
    assert r.headers["Content-Range"] == f"bytes */{len(BODY)}"


def test_if_range(srv: ServerHandle) -> None:
    url = f"{srv.url}/image/targets/f.bin"
    etag = get(url).headers["ETag"]
    assert get(url, Range="bytes=5-9", **{"If-Range": etag}).status == 206
    r = get(url, Range="bytes=5-9", **{"If-Range": '"other"'})
    assert r.status == 200 and r.data == BODY  # changed file: whole of it


def test_head_and_missing_and_traversal(srv: ServerHandle, tmp_path: Path) -> None:
    r = urllib3.request("HEAD", f"{srv.url}/image/targets/f.bin", retries=False)
    assert r.status == 200 and r.headers["Content-Length"] == str(len(BODY)) and r.data == b""
    (tmp_path / "secret.txt").write_text("no")
    for path in ("/nope.bin", "/../secret.txt", "/%2e%2e/secret.txt", "/.reports.sqlite"):
        assert get(srv.url + path).status == 404, path


def test_parse_range_edges() -> None:
    assert parse_range("bytes=0-0", 1) == (0, 0)
    assert parse_range("bytes=-0", 10) == "416"
    assert parse_range("bytes=5-", 0) == "416"
    assert parse_range("bytes=9-3", 10) is None


def test_reports_json_and_cbor(srv: ServerHandle) -> None:
    manifest = {"vehicle": "VIN9", "ecus": [{"ecu_id": "brake", "release_counter": 3}]}
    r = urllib3.request(
        "POST",
        f"{srv.url}/reports/VIN9",
        body=json.dumps(manifest).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert r.status == 201
    body = cbor2.dumps([1, "VIN9", b"\x01\x02"])
    r = urllib3.request(
        "POST", f"{srv.url}/reports/VIN9", body=body, headers={"Content-Type": "application/cbor"}
    )
    assert r.status == 201
    listed = json.loads(get(f"{srv.url}/reports/VIN9").data)
    assert [x["report"] for x in listed] == [[1, "VIN9", "0102"], manifest]  # newest first
    assert json.loads(get(f"{srv.url}/reports").data) == {"VIN9": 2}
    assert (srv.state.root / ".reports.sqlite").exists()
    bad = urllib3.request(
        "POST",
        f"{srv.url}/reports/VIN9",
        body=b"{nope",
        headers={"Content-Type": "application/json"},
    )
    assert bad.status == 400
    big = urllib3.request("POST", f"{srv.url}/reports/VIN9", body=b"0" * ((1 << 20) + 1))
    assert big.status == 413
    assert urllib3.request("POST", f"{srv.url}/reports/bad%20id", body=b"{}").status == 400


def test_offline_control_drops_connections(srv: ServerHandle) -> None:
    url = f"{srv.url}/image/targets/f.bin"
    r = urllib3.request("POST", f"{srv.url}/_control", body=b'{"offline": true}')
    assert json.loads(r.data)["offline"] is True
    with pytest.raises(urllib3.exceptions.HTTPError):
        get(url)
    with pytest.raises(urllib3.exceptions.HTTPError):
        urllib3.request("POST", f"{srv.url}/reports/V1", body=b"{}", retries=False)
    assert get(f"{srv.url}/reports/V1").status == 200  # operators still see the reports
    urllib3.request("POST", f"{srv.url}/_control", body=b'{"offline": false}')
    assert get(url).status == 200


def test_controls_off_by_default(tmp_path: Path) -> None:
    with start_server(tmp_path) as s:
        assert s.url.startswith("http://127.0.0.1:")
        assert urllib3.request("POST", f"{s.url}/_control", body=b"{}").status == 404


def test_cli_refuses_non_loopback_without_flag(tmp_path: Path) -> None:
    assert cli_main(["server", "--root", str(tmp_path), "--host", "0.0.0.0"]) == 3


def test_cli_server_process(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello")
    exe = Path(sys.executable).parent / "otalink"
    p = subprocess.Popen(
        [str(exe), "server", "--root", str(tmp_path), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stdout is not None
        line = p.stdout.readline()
        url = line.split()[3]
        assert url.startswith("http://127.0.0.1:")
        assert get(f"{url}/a.txt", Range="bytes=1-3").data == b"ell"
    finally:
        p.terminate()
        p.wait(10)


# The server in its own process with DEBUG logging on (and the request log), so its stderr is
# exactly what an operator would see.
_SERVE = """
import logging, sys
from otalink.host.tools.server.app import make_server
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(levelname)s %(message)s")
srv = make_server(sys.argv[1], rate_bps=1_000_000)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"""


def _reset(s: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a killed or cancelled client does."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def test_client_disconnects_log_one_debug_line_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(os.urandom(2 << 20))  # 2 s at the throttled rate
    p = subprocess.Popen(
        [sys.executable, "-c", _SERVE, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OTALINK_SERVER_LOG": "1"},
    )
    assert p.stdout is not None and p.stderr is not None
    lines: queue.Queue[str] = queue.Queue()
    err: list[str] = []

    def pump() -> None:
        assert p.stderr is not None
        for line in p.stderr:
            err.append(line)
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()

    def wait_for(word: str) -> None:
        try:
            while word not in lines.get(timeout=60):
                pass
        except queue.Empty:
            pytest.fail(f"no {word!r} line on stderr: {''.join(err)!r}")

    try:
        port = int(p.stdout.readline())
        # 1. dropped mid-body (a cancelled download / a Range resume's first connection)
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while b"\r\n\r\n" not in got or len(got) < 4096:
            got += s.recv(4096)
        assert got.startswith(b"HTTP/1.1 200")
        _reset(s)
        wait_for("dropped /big.bin")
        # 2. dropped while the server reads a request body
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"POST /reports/V1 HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        _reset(s)
        wait_for("disconnected")
        # the server carries on
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("GET", "/healthz")
        assert c.getresponse().status == 200
        c.close()
    finally:
        p.terminate()
        p.wait(10)
    text = "".join(err)
    assert "Traceback" not in text
    assert "Exception occurred" not in text
    gone = [ln for ln in err if "Error" in ln]
    # The two clients the test drops, each one DEBUG line (the kernel may also reset the
    # health-check connection on close: that is one more such line, never a traceback).
    assert len(gone) >= 2, text
    assert any("dropped /big.bin after" in ln for ln in gone), text
    assert all(ln.startswith("DEBUG client 127.0.0.1:") for ln in gone), text


def test_real_errors_keep_their_traceback(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "reports.sqlite"
    with start_server(tmp_path / "root", db_path=db) as s:
        db.unlink()
        db.mkdir()  # the report store breaks under the server: a real fault, not a disconnect
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        c.request("POST", "/reports/V1", body=b"{}", headers={"Content-Type": "application/json"})
        r = c.getresponse()
        # the client gets a clean 500 problem (no stack trace in it), the operator the traceback
        assert r.status == 500
        assert r.getheader("Content-Type") == "application/problem+json"
        body = r.read()
        assert json.loads(body)["code"] == "internal" and b"Traceback" not in body
        c.close()
    err = capfd.readouterr().err
    assert "Traceback" in err
    assert "sqlite3.OperationalError" in err
