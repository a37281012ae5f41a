"""The embedded update server: Range semantics, reports in SQLite, loopback binding, controls."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cbor2
import pytest
import urllib3
from otalink.host.cli import main as cli_main
from otalink.host.server.app import ServerHandle, parse_range, start_server

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
