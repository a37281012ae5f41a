"""``otalink tuf-client``: the TUF conformance-suite client interface over our client."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib import parse

import pytest
from otalink.host.cli import main as cli_main
from otalink.host.gateway.update.repos import hashed_target_path
from otalink.host.tools.repo.quick import RepoSet, create_repos
from otalink.host.tools.server.app import ServerHandle, start_server


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[tuple[RepoSet, ServerHandle, Path]]:
    rs = create_repos(tmp_path / "repos")
    rs.image.add_image(
        "fw/app.bin", b"A" * 5000, hardware_ids=["hw"], version="1", release_counter=1
    )
    rs.image.add_image("notes.txt", b"hello", hardware_ids=["hw"], version="1", release_counter=1)
    rs.publish(tmp_path / "srv")
    root = tmp_path / "trusted-root.json"
    root.write_bytes(rs.image.root_bytes())
    with start_server(tmp_path / "srv") as srv:
        yield rs, srv, root


def tuf(tmp: Path, srv: ServerHandle, *args: str, targets: tuple[str, ...] = ()) -> int:
    argv = ["tuf-client", "--metadata-dir", str(tmp / "md")]
    argv += ["--metadata-url", f"{srv.url}/image/metadata"]
    argv += ["--target-base-url", f"{srv.url}/image/targets/", "--target-dir", str(tmp / "dl")]
    for t in targets:
        argv += ["--target-name", t]
    return cli_main([*argv, *args])


def test_init_refresh_download(tmp_path: Path, repo: tuple[RepoSet, ServerHandle, Path]) -> None:
    _rs, srv, root = repo
    # init uses no network: an unreachable URL is fine
    rc = cli_main(
        [
            "tuf-client",
            "--metadata-dir",
            str(tmp_path / "md"),
            "--metadata-url",
            "http://127.0.0.1:9/",
            "init",
            str(root),
        ]
    )
    assert rc == 0
    assert json.loads((tmp_path / "md" / "root.json").read_bytes())["signed"]["version"] == 1
    assert tuf(tmp_path, srv, "refresh") == 0
    for role in ("timestamp", "snapshot", "targets"):
        assert (tmp_path / "md" / f"{role}.json").exists()  # un-versioned names
    assert tuf(tmp_path, srv, "download", targets=("fw/app.bin", "notes.txt")) == 0
    assert (tmp_path / "dl" / parse.quote("fw/app.bin", "")).read_bytes() == b"A" * 5000
    assert (tmp_path / "dl" / "notes.txt").read_bytes() == b"hello"
    # unknown target: failure
    assert tuf(tmp_path, srv, "download", targets=("nope.bin",)) == 1


def test_tampered_target_fails(tmp_path: Path, repo: tuple[RepoSet, ServerHandle, Path]) -> None:
    rs, srv, root = repo
    assert cli_main(["tuf-client", "--metadata-dir", str(tmp_path / "md"), "init", str(root)]) == 0
    sha = rs.image.image("fw/app.bin").sha256
    f = tmp_path / "srv" / "image" / "targets" / hashed_target_path("fw/app.bin", sha)
    f.write_bytes(b"B" * 5000)
    assert tuf(tmp_path, srv, "download", targets=("fw/app.bin",)) == 1
    assert not (tmp_path / "dl" / parse.quote("fw/app.bin", "")).exists()


def test_expired_metadata_fails(tmp_path: Path, repo: tuple[RepoSet, ServerHandle, Path]) -> None:
    rs, srv, root = repo
    assert cli_main(["tuf-client", "--metadata-dir", str(tmp_path / "md"), "init", str(root)]) == 0
    rs.image.set_expiry("snapshot", -10)
    rs.image.resign("snapshot")
    rs.publish(tmp_path / "srv")
    assert tuf(tmp_path, srv, "refresh") == 1


def test_console_script_exit_codes(
    tmp_path: Path, repo: tuple[RepoSet, ServerHandle, Path]
) -> None:
    _, srv, root = repo
    exe = str(Path(sys.executable).parent / "otalink")
    md = str(tmp_path / "md")
    ok = subprocess.run([exe, "tuf-client", "--metadata-dir", md, "init", str(root)], check=False)
    assert ok.returncode == 0
    url = f"{srv.url}/image/metadata"
    ok = subprocess.run(
        [exe, "tuf-client", "--metadata-dir", md, "--metadata-url", url, "refresh"], check=False
    )
    assert ok.returncode == 0
    bad = subprocess.run(
        [exe, "tuf-client", "--metadata-dir", md, "--metadata-url", url + "/nowhere", "refresh"],
        capture_output=True,
        check=False,
    )
    assert bad.returncode != 0
