"""Delta targets of the Image repository (issue 13, part 1): ``add-image --delta-from``."""

from __future__ import annotations

import hashlib
import os
import random
import zlib
from pathlib import Path

import pytest
from otalink.host.cli import main as cli_main
from otalink.host.tools.repo.api import ImageRepo, RepoError
from otalink.host.tools.repo.delta import PATCH_FORMAT, apply_patch
from otalink.host.tools.repo.quick import create_repos
from otalink.host.tools.server.app import start_server


def _release(base: bytes, seed: int) -> bytes:
    """A minor release of ``base``: a few small edits and an appended tail."""
    rnd = random.Random(seed)
    new = bytearray(base)
    for _ in range(6):
        at = rnd.randrange(len(new) - 64)
        new[at : at + 16] = rnd.randbytes(16)
    return bytes(new) + rnd.randbytes(300)


@pytest.fixture
def repo(tmp_path: Path) -> ImageRepo:
    return create_repos(tmp_path / "w").image


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def test_a_patch_is_a_signed_target_bound_to_its_base_and_result(
    repo: ImageRepo, tmp_path: Path
) -> None:
    v1 = os.urandom(40_000)
    v2 = _release(v1, 1)
    repo.add_image("bms-1.0.bin", v1, hardware_ids=["bms-hw"], version="1.0.0", release_counter=1)
    img = repo.add_image("bms-1.1.bin", v2, hardware_ids=["bms-hw"], version="1.1.0",
                         release_counter=2, delta_from=["1.0.0"])  # fmt: skip
    [entry] = repo.deltas(img.name)
    listed = repo.targets().targets
    tf = listed[entry["target"]]
    patch = (repo.path / "targets" / entry["target"]).read_bytes()
    # the targets metadata signs the patch's own length and hash
    signed = (tf.length, tf.hashes["sha256"])
    assert signed == (len(patch), _sha(patch)) == (entry["length"], entry["sha256"])
    c = tf.custom
    assert c["delta_of"] == "bms-1.1.bin" and c["format"] == PATCH_FORMAT
    assert c["base"] == {"target": "bms-1.0.bin", "version": "1.0.0", "sha256": _sha(v1),
                         "length": len(v1)}  # fmt: skip
    assert c["result"] == {"version": "1.1.0", "sha256": _sha(v2), "length": len(v2)}
    assert c["hardware_ids"] == ["bms-hw"] and entry["base_sha256"] == _sha(v1)
    # what the ECU's applier accepts: sequential, compression none (ADR 0006); mostly zeros,
    # so small once the link deflates it
    assert patch[0] == 0x00 and len(zlib.compress(patch)) < len(v2) // 10
    assert apply_patch(v1, patch) == v2
    # what a vehicle downloads: the patch's raw-deflate form, a signed target of its own
    z = c["compressed"]
    ztf = listed[z["target"]]
    zdata = (repo.path / "targets" / z["target"]).read_bytes()
    assert (
        (ztf.length, ztf.hashes["sha256"])
        == (z["length"], z["sha256"])
        == (len(zdata), _sha(zdata))
    )
    assert ztf.custom == {"compressed_form_of": entry["target"], "wbits": 15}
    assert zlib.decompress(zdata, -15) == patch and len(zdata) < len(v2) // 10
    # a patch is not an image a Director can assign
    assert sorted(i.name for i in repo.images()) == ["bms-1.0.bin", "bms-1.1.bin"]
    # published with the images; the TUF client downloads it against the signed hash
    srv_root = tmp_path / "srv"
    out = repo.publish_into_server(srv_root)
    md, dl = tmp_path / "md", tmp_path / "dl"
    assert cli_main(["tuf-client", "--metadata-dir", str(md), "init",
                     str(out / "metadata" / "1.root.json")]) == 0  # fmt: skip
    with start_server(srv_root) as srv:
        base = f"{srv.url}/{out.relative_to(srv_root).as_posix()}"
        assert cli_main(["tuf-client", "--metadata-dir", str(md), "--metadata-url",
                         f"{base}/metadata", "--target-base-url", f"{base}/targets",
                         "--target-dir", str(dl), "--target-name", entry["target"],
                         "download"]) == 0  # fmt: skip
    assert (dl / entry["target"]).read_bytes() == patch


def test_bases_that_cannot_be_used_are_refused(repo: ImageRepo) -> None:
    v1 = os.urandom(8_000)
    repo.add_image("a-1.bin", v1, hardware_ids=["hw-a"], version="1.0.0", release_counter=3)
    repo.add_image("b-1.bin", v1, hardware_ids=["hw-b"], version="0.9.0", release_counter=1)
    v2 = _release(v1, 2)
    cases = {
        "no such version": (["2.0.0"], 4, "no image of version '2.0.0' listed"),
        "other hardware id": (["0.9.0"], 4, "for every hardware id hw-a"),
        "not an earlier release": (["1.0.0"], 3, "not earlier than 3"),
        "the same version twice": (["1.0.0", "1.0.0"], 4, "distinct versions"),
    }
    before = repo.open("targets").signed.version
    for why, (versions, counter, msg) in cases.items():
        with pytest.raises(RepoError, match=msg):
            repo.add_image("a-2.bin", v2, hardware_ids=["hw-a"], version="2.1.0",
                           release_counter=counter, delta_from=versions)  # fmt: skip
        assert repo.open("targets").signed.version == before, why  # nothing was written
    assert "a-2.bin" not in repo.targets().targets


def test_a_corrupted_stored_base_is_refused(repo: ImageRepo) -> None:
    v1 = os.urandom(8_000)
    repo.add_image("a-1.bin", v1, hardware_ids=["hw-a"], version="1.0.0", release_counter=1)
    stored = repo.path / "targets" / "a-1.bin"
    stored.write_bytes(b"\x00" + stored.read_bytes()[1:])
    with pytest.raises(RepoError, match="stored bytes differ"):
        repo.add_image("a-2.bin", _release(v1, 3), hardware_ids=["hw-a"], version="1.1.0",
                       release_counter=2, delta_from=["1.0.0"])  # fmt: skip


def test_replacing_or_removing_an_image_drops_its_patches(repo: ImageRepo) -> None:
    v1 = os.urandom(8_000)
    repo.add_image("a-1.bin", v1, hardware_ids=["hw-a"], version="1.0.0", release_counter=1)
    repo.add_image("a-x.bin", _release(v1, 4), hardware_ids=["hw-a"], version="1.1.0",
                   release_counter=2, delta_from=["1.0.0"])  # fmt: skip
    [old] = repo.deltas("a-x.bin")
    repo.add_image("a-x.bin", _release(v1, 5), hardware_ids=["hw-a"], version="1.1.1",
                   release_counter=3)  # fmt: skip
    assert old["target"] not in repo.targets().targets and repo.deltas("a-x.bin") == []
    assert f"{old['target']}.deflate" not in repo.targets().targets
    repo.add_image("a-x.bin", _release(v1, 6), hardware_ids=["hw-a"], version="1.1.2",
                   release_counter=4, delta_from=["1.0.0"])  # fmt: skip
    [new] = repo.deltas("a-x.bin")
    repo.remove_image("a-x.bin")
    assert new["target"] not in repo.targets().targets
    assert f"{new['target']}.deflate" not in repo.targets().targets
    assert sorted(repo.targets().targets) == ["a-1.bin"]


def test_cli_add_image_with_delta_from(
    tmp_path: Path, repo: ImageRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    v1 = os.urandom(20_000)
    f1, f2 = tmp_path / "app-1.bin", tmp_path / "app-2.bin"
    f1.write_bytes(v1)
    f2.write_bytes(_release(v1, 7))
    common = ["repo", "add-image", "--repo", str(repo.path), "--hw", "hw-a"]
    assert cli_main([*common, "--file", str(f1), "--version", "1.0.0",
                     "--release-counter", "1"]) == 0  # fmt: skip
    assert cli_main([*common, "--file", str(f2), "--version", "1.1.0", "--release-counter", "2",
                     "--delta-from", "1.0.0"]) == 0  # fmt: skip
    [entry] = ImageRepo.from_dir(repo.path).deltas("app-2.bin")
    assert (
        f"{entry['target']}: {entry['length']} bytes, delta from 1.0.0" in capsys.readouterr().out
    )
    assert cli_main([*common, "--file", str(f2), "--name", "app-3.bin", "--version", "1.2.0",
                     "--release-counter", "3", "--delta-from", "9.9.9"]) != 0  # fmt: skip
    assert "no image of version '9.9.9'" in capsys.readouterr().err
