"""A malicious or broken server's numbers (issue 10, defect 7, client side): Content-Length and
Content-Range values that are not ASCII numbers, or have thousands of digits, end in the update
error families (or are ignored where the read is bounded anyway), never in a ``ValueError``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from otalink.host.gateway.update import errors as E
from otalink.host.gateway.update.download import Downloader
from otalink.host.gateway.update.fetcher import OtalinkFetcher
from otalink.host.gateway.update.http import Transport, header_uint
from tuf.api import exceptions as tuf_exc

from tests.gateway.update.conftest import FAST
from tests.gateway.update.netutil import ScriptedServer

SIZE = 4096
DATA = hashlib.shake_256(b"odd numbers").digest(SIZE)
SHA = hashlib.sha256(DATA).hexdigest()
HUGE = "9" * 5000  # int() of it raises ValueError (more than 4300 digits)


def scripted(status: str, headers: str, body: bytes) -> ScriptedServer:
    raw = f"HTTP/1.1 {status}\r\n{headers}Connection: close\r\n\r\n".encode("latin-1") + body
    return ScriptedServer(lambda _req: raw)


def fetch(url: str, dest: Path) -> Downloader:
    dl = Downloader(Transport(FAST))
    dl.fetch(url + "/t.bin", dest, SIZE, SHA)
    return dl


@pytest.mark.parametrize("clen", ["²", "¹²³", "-5", "+4096", "4_096", "0x1000", " "])
def test_malformed_content_length_is_ignored(clen: str, tmp_path: Path) -> None:
    """The read is bounded by the trusted length anyway: a length that is not a number is no
    number (as urllib3 treats it), and the verified bytes are what counts."""
    srv = scripted("200 OK", f"Content-Length: {clen}\r\n", DATA)
    try:
        fetch(srv.url, tmp_path / "t.bin")
    finally:
        srv.close()
    assert (tmp_path / "t.bin").read_bytes() == DATA


@pytest.mark.parametrize("clen", [HUGE, "0" * 5000 + "4097", str(2**64)])
def test_huge_content_length_is_endless_data(clen: str, tmp_path: Path) -> None:
    srv = scripted("200 OK", f"Content-Length: {clen}\r\n", DATA)
    try:
        with pytest.raises(E.EndlessDataError):
            fetch(srv.url, tmp_path / "t.bin")
    finally:
        srv.close()
    assert not (tmp_path / "t.bin").exists()


def _partial(dest: Path, have: int) -> None:
    """A download interrupted at ``have`` bytes (what an earlier attempt left)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.with_name(dest.name + ".part").write_bytes(DATA[:have])
    side = {"url": "x", "length": SIZE, "sha256": SHA, "offset": have}
    dest.with_name(dest.name + ".part.json").write_text(json.dumps(side))


@pytest.mark.parametrize(
    ("content_range", "error"),
    [
        (f"bytes 1000-4095/{HUGE}", E.EndlessDataError),
        (f"bytes 1000-{HUGE}/4096", None),  # the end is not used: the total and start are
        (f"bytes {HUGE}-4095/4096", E.ConnectivityError),
        ("bytes ¹²³-4095/4096", E.ConnectivityError),
        ("bytes 1000-4095/4095", E.TargetIntegrityError),
        ("bytes 1000-4095/4096", None),
    ],
)
def test_odd_content_range(
    content_range: str, error: type[E.UpdateError] | None, tmp_path: Path
) -> None:
    dest = tmp_path / "t.bin"
    _partial(dest, 1000)
    srv = scripted(
        "206 Partial Content",
        f"Content-Range: {content_range}\r\nContent-Length: {SIZE - 1000}\r\n",
        DATA[1000:],
    )
    try:
        if error is None:
            dl = fetch(srv.url, dest)
            assert dest.read_bytes() == DATA
            assert dl.last_stats.resumed_from == [1000]
        else:
            with pytest.raises(error):
                fetch(srv.url, dest)
            assert not dest.exists()
    finally:
        srv.close()
    assert all(b"Range: bytes=1000-" in r for r in srv.requests)


def test_metadata_fetch_with_huge_content_length(tmp_path: Path) -> None:
    srv = scripted("200 OK", f"Content-Length: {HUGE}\r\n", b"{}")
    try:
        fetcher = OtalinkFetcher(Transport(FAST))
        with pytest.raises(tuf_exc.DownloadLengthMismatchError):
            b"".join(fetcher.fetch(srv.url + "/timestamp.json"))
    finally:
        srv.close()


def test_header_uint() -> None:
    assert header_uint("0") == 0 and header_uint(" 42 ") == 42 and header_uint("007") == 7
    for bad in ("", " ", "²", "-1", "+1", "1_0", "0x1", "1.0", "\u0661", None):
        assert header_uint(bad) is None, bad
    assert header_uint(HUGE) is not None and header_uint(HUGE) > 2**63  # type: ignore[operator]
