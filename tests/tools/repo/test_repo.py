"""The repository tool: ``otalink repo`` end to end, threshold signing, rotation, instructions."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import cbor2
import pytest
from otalink.host.cli import main as cli_main
from otalink.host.gateway.update.client import UpdateClient
from otalink.host.gateway.update.instruction import decode_instruction, verify_instruction
from otalink.host.gateway.update.types import EcuInfo, UpdateConfig
from otalink.host.keys import keyid
from otalink.host.tools.repo.api import ImageRepo, RepoError, ThresholdError
from otalink.host.tools.repo.quick import create_repos
from otalink.host.tools.server.app import start_server


def run(*argv: str) -> int:
    return cli_main(["repo", *argv])


def test_cli_full_flow_with_threshold_and_rotation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    k = tmp_path / "keys"
    names = ["root1", "root2", "tg", "sn", "ts", "ts2", "dr", "dt", "ds", "dts", "ins"]
    assert run("keygen", "--dir", str(k), *names) == 0
    assert (k / "root1.key").stat().st_mode & 0o777 == 0o600
    key = lambda n: str(k / f"{n}.key")  # noqa: E731
    img, drc, srv_root = tmp_path / "image", tmp_path / "director", tmp_path / "srv"
    # Image repository: root needs 2 of 2 signatures, only root1 signs at init
    assert (
        run(
            "init",
            "image",
            "--repo",
            str(img),
            "--root-key",
            key("root1"),
            "--root-key",
            key("root2"),
            "--targets-key",
            key("tg"),
            "--snapshot-key",
            key("sn"),
            "--timestamp-key",
            key("ts"),
            "--threshold",
            "root=2",
        )
        == 0
    )
    assert run("sign", "--repo", str(img), "--role", "root", "--key", key("root1")) == 0
    # ... init already signed with both keys given; drop one signature to exercise `sign`
    r = ImageRepo.from_dir(img)
    md = r.open("root")
    md.signatures.pop(next(iter(md.signatures)))
    r._save_root(md)
    assert r.check()  # below threshold
    assert run("publish", "--repo", str(img), "--server-root", str(srv_root)) == 1
    assert (
        run(
            "sign",
            "--repo",
            str(img),
            "--role",
            "root",
            "--key",
            key("root1"),
            "--key",
            key("root2"),
        )
        == 0
    )
    assert r.check() == []
    fw = tmp_path / "brake.bin"
    fw.write_bytes(b"\x5a" * 20_000)
    assert (
        run(
            "add-image",
            "--repo",
            str(img),
            "--file",
            str(fw),
            "--name",
            "brake-3.bin",
            "--hw",
            "brake-v1",
            "--version",
            "3.0",
            "--release-counter",
            "3",
            "--title",
            "Brakes",
            "--notes",
            "smoother ABS",
            "--unavailable",
            "driving",
            "--deflate-wbits",
            "10",
        )
        == 0
    )
    assert (
        run(
            "init",
            "director",
            "--repo",
            str(drc),
            "--vehicle",
            "VIN7",
            "--root-key",
            key("dr"),
            "--targets-key",
            key("dt"),
            "--snapshot-key",
            key("ds"),
            "--timestamp-key",
            key("dts"),
            "--instruction-key",
            key("ins"),
        )
        == 0
    )
    assert (
        run(
            "assign",
            "--repo",
            str(drc),
            "--image-repo",
            str(img),
            "--ecu",
            "brake",
            "--hw",
            "brake-v1",
            "--target",
            "brake-3.bin",
        )
        == 0
    )
    assert (
        run(
            "assign",
            "--repo",
            str(drc),
            "--image-repo",
            str(img),
            "--ecu",
            "brake",
            "--hw",
            "bms-v2",
            "--target",
            "brake-3.bin",
        )
        == 1
    )
    # rotate the Image timestamp key (root re-signed by both root keys)
    assert (
        run(
            "rotate",
            "--repo",
            str(img),
            "--role",
            "timestamp",
            "--new-key",
            key("ts2"),
            "--root-key",
            key("root1"),
            "--root-key",
            key("root2"),
        )
        == 0
    )
    for repo in (img, drc):
        assert run("publish", "--repo", str(repo), "--server-root", str(srv_root)) == 0
    capsys.readouterr()
    assert run("status", "--repo", str(img)) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["roles"]["root"]["version"] == 2 and status["problems"] == []
    assert sorted(status["images"]) == ["brake-3.bin"]
    # a vehicle provisioned with root v1 follows the rotation and gets the plan
    (tmp_path / "ir.json").write_bytes(
        (img / "metadata" / "root_history" / "1.root.json").read_bytes()
    )
    (tmp_path / "dr.json").write_bytes((drc / "metadata" / "root.json").read_bytes())
    with start_server(srv_root) as srv:
        client = UpdateClient(
            UpdateConfig(
                server_url=srv.url,
                vehicle_id="VIN7",
                state_dir=tmp_path / "veh",
                image_root=tmp_path / "ir.json",
                director_root=tmp_path / "dr.json",
                ecus=(EcuInfo("brake", "brake-v1"),),
            )
        )
        plan = client.check()
        assert plan is not None
        info = plan.images["brake-3.bin"]
        assert (info.title, info.release_notes, info.unavailable_functions) == (
            "Brakes",
            "smoother ABS",
            ("driving",),
        )
        assert info.compressed is not None and info.compressed.wbits == 10
        files = client.download(plan, include_compressed=True)
    z = files["brake-3.bin.deflate"].read_bytes()
    assert len(z) == info.compressed.length < 20_000
    assert zlib.decompress(z, -10) == fw.read_bytes()


def test_instruction_bytes_and_signatures(tmp_path: Path) -> None:
    rs = create_repos(tmp_path / "w", ["VIN1"])
    img = rs.image.add_image(
        "bms-1.bin",
        b"x" * 999,
        hardware_ids=["bms-v2"],
        version="1.2",
        release_counter=7,
        kind="bundle",
    )
    data = rs.director("VIN1").assign(
        "bms", "bms-v2", img, issued=1_700_000_000, expires=1_800_000_000
    )
    ins = decode_instruction(data)
    assert (ins.ecu_id, ins.hw_id, ins.version, ins.release_counter, ins.image_len) == (
        "bms",
        "bms-v2",
        "1.2",
        7,
        999,
    )
    assert (ins.issued, ins.expires, ins.target, ins.kind) == (
        1_700_000_000,
        1_800_000_000,
        "bms-1.bin",
        0,
    )
    # the bytes are the profile's canonical CBOR: an independent encoder (cbor2) agrees, and so
    # does the protocol codec the ECU runs (the repository signs what it encodes)
    fields = ["bms", "bms-v2", "1.2", 7, 999, bytes.fromhex(img.sha256)]
    assert cbor2.dumps([1, *fields, 1_700_000_000, 1_800_000_000, "bms-1.bin", 0]) == data
    from otalink.protocol import messages  # type: ignore[attr-defined]

    assert (
        messages.encode_instruction(
            "bms",
            "bms-v2",
            "1.2",
            7,
            999,
            bytes.fromhex(img.sha256),
            1_700_000_000,
            1_800_000_000,
            "bms-1.bin",
            0,
        )
        == data
    )
    custom = rs.director("VIN1").assignments()["bms"]
    sigs = [(bytes.fromhex(a), bytes.fromhex(b)) for a, b in custom["instruction_sigs"]]
    pub = rs.key("director-instruction").public_raw
    assert sigs[0][0] == keyid(pub)
    assert verify_instruction(data, sigs, [pub]) == 1
    with pytest.raises(ValueError):
        verify_instruction(data[:-1] + b"\x01", sigs, [pub])
    with pytest.raises(RepoError):
        rs.director("VIN1").assign("bms", "brake-v1", img)  # image not built for it


def test_publish_refuses_below_threshold(tmp_path: Path) -> None:
    rs = create_repos(tmp_path / "w")
    rs.image.online["targets"] = []
    with pytest.raises(RepoError):
        rs.image.add_image("a.bin", b"a", hardware_ids=["h"], version="1", release_counter=1)
    md = rs.image.open("targets")
    md.signatures.clear()
    rs.image._save("targets", md)
    with pytest.raises(ThresholdError):
        rs.image.publish(tmp_path / "out")


def test_quickstart_cli(tmp_path: Path) -> None:
    assert (
        run(
            "quickstart",
            "--workdir",
            str(tmp_path / "w"),
            "--vehicle",
            "V1",
            "--vehicle",
            "V2",
            "--server-root",
            str(tmp_path / "srv"),
        )
        == 0
    )
    for p in (
        "image/metadata/1.root.json",
        "director/V1/metadata/timestamp.json",
        "director/V2/metadata/root.json",
    ):
        assert (tmp_path / "srv" / p).exists()


def test_cli_root_rotation_followed_by_tuf_client(tmp_path: Path) -> None:
    k = tmp_path / "K"
    assert run("keygen", "--dir", str(k), "root1", "root2", "root3", "t", "s", "ts") == 0
    img, out = str(tmp_path / "IMG"), tmp_path / "OUT"
    assert (
        run(
            "init", "image", "--repo", img, "--root-key", str(k / "root1"),
            "--root-key", str(k / "root2"), "--targets-key", str(k / "t"),
            "--snapshot-key", str(k / "s"), "--timestamp-key", str(k / "ts"),
            "--threshold", "root=2",
        )
        == 0
    )  # fmt: skip
    assert run("publish", "--repo", img, "--out", str(out)) == 0
    v1 = tmp_path / "root-v1.json"
    v1.write_bytes((out / "metadata" / "1.root.json").read_bytes())
    # only one of the two old root keys signs: root v2 stays below threshold, publish refuses
    assert run("rotate", "--repo", img, "--role", "root", "--new-key", str(k / "root3"),
               "--root-key", str(k / "root1")) == 0  # fmt: skip
    assert run("publish", "--repo", img, "--out", str(out)) == 1
    assert run("sign", "--repo", img, "--role", "root", "--key", str(k / "root2")) == 0
    assert run("publish", "--repo", img, "--out", str(out)) == 0
    md = str(tmp_path / "md")
    with start_server(out) as srv:
        assert cli_main(["tuf-client", "--metadata-dir", md, "init", str(v1)]) == 0
        url = f"{srv.url}/metadata"
        assert cli_main(["tuf-client", "--metadata-dir", md, "--metadata-url", url, "refresh"]) == 0
    trusted = json.loads((tmp_path / "md" / "root.json").read_bytes())["signed"]
    assert trusted["version"] == 2
    assert trusted["roles"]["root"]["keyids"] == [keymod_load(k / "root3.key")]


def keymod_load(path: Path) -> str:
    from otalink.host.tools.repo import keys

    return keys.load(path).keyid


def _versions(repo: ImageRepo) -> dict[str, int]:
    return {
        r: int(repo.open(r).signed.version) for r in ("root", "targets", "snapshot", "timestamp")
    }


def test_each_change_makes_the_versions_that_pin_it(tmp_path: Path) -> None:
    """python-tuf's Repository helpers keep the chain: a new targets version gets a new snapshot
    (pinning it) and a new timestamp (pinning that); a fresh timestamp touches nothing else."""
    rs = create_repos(tmp_path / "w")
    img = rs.image
    assert _versions(img) == {"root": 1, "targets": 1, "snapshot": 1, "timestamp": 1}
    img.add_image("a.bin", b"a", hardware_ids=["h"], version="1", release_counter=1)
    assert _versions(img) == {"root": 1, "targets": 2, "snapshot": 2, "timestamp": 2}
    img.resign("timestamp")
    assert _versions(img) == {"root": 1, "targets": 2, "snapshot": 2, "timestamp": 3}
    img.resign("snapshot")
    assert _versions(img) == {"root": 1, "targets": 2, "snapshot": 3, "timestamp": 4}
    assert img.snapshot().meta["targets.json"].version == 2
    assert img.timestamp().snapshot_meta.version == 3
    new_ts = keymod_pair(tmp_path, "ts2")
    img.rotate_online_key(
        "timestamp", [new_ts], [str(tmp_path / "ts2.key")], [rs.key("image-root")]
    )
    assert _versions(img) == {"root": 2, "targets": 2, "snapshot": 3, "timestamp": 5}
    assert img.check() == []


def test_a_refused_edit_writes_no_metadata(tmp_path: Path) -> None:
    """An edit that cannot be signed (no online key) leaves every metadata file as it was
    (the hand-written cascade used to save the changed targets with stale signatures)."""
    rs = create_repos(tmp_path / "w")
    md_dir = rs.image.path / "metadata"
    before = {p.name: p.read_bytes() for p in md_dir.glob("*.json")}
    rs.image.online["targets"] = []
    with pytest.raises(RepoError, match="no online key for targets"):
        rs.image.add_image("a.bin", b"a", hardware_ids=["h"], version="1", release_counter=1)
    assert {p.name: p.read_bytes() for p in md_dir.glob("*.json")} == before
    assert rs.image.check() == [] and rs.image.images() == []


def keymod_pair(tmp_path: Path, name: str) -> Any:
    from otalink.host.tools.repo import keys

    return keys.generate(tmp_path, name)


@pytest.mark.parametrize("item", ["root", "root=\u00b2", "root=\u0662", "root=2x", "=2"])
def test_role_numbers_are_ascii_usage_errors(tmp_path: Path, item: str) -> None:
    """`--threshold ROLE=N` / `--expiry ROLE=S` take ASCII digits; anything else is a usage
    error (exit 2) naming the argument, not a traceback or int()'s message."""
    k = tmp_path / "k"
    assert run("keygen", "--dir", str(k), "r", "t", "s", "ts") == 0
    argv = ["init", "image", "--repo", str(tmp_path / "img"), "--root-key", str(k / "r")]
    argv += ["--targets-key", str(k / "t"), "--snapshot-key", str(k / "s")]
    argv += ["--timestamp-key", str(k / "ts"), "--threshold", item]
    with pytest.raises(SystemExit) as ei:
        run(*argv)
    assert ei.value.code == 2
    assert not (tmp_path / "img" / "repo.json").exists()
    argv[-1] = "root=1"
    assert run(*argv, "--expiry", "timestamp=-60") == 0  # a negative expiry: freeze tests
