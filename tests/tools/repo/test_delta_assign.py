"""The Director binds a delta base (issue 13, part 2 of the trust binding): ``otalink repo assign
--delta-base VERSION|SHA256`` signs a format-2 instruction naming the base of a patch the image
lists; without it the instruction stays format 1 (full images only)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from otalink.host.cli import main as cli_main
from otalink.host.gateway.update.instruction import decode_instruction, verify_instruction
from otalink.host.tools.repo.api import RepoError
from otalink.host.tools.repo.delta import resolve_base
from otalink.host.tools.repo.quick import RepoSet, create_repos
from otalink.protocol import messages


def _release(base: bytes, seed: int) -> bytes:
    rnd = random.Random(seed)
    new = bytearray(base)
    for _ in range(5):
        at = rnd.randrange(len(new) - 32)
        new[at : at + 8] = rnd.randbytes(8)
    return bytes(new) + rnd.randbytes(200)


@pytest.fixture
def repos(tmp_path: Path) -> RepoSet:
    rs = create_repos(tmp_path / "w", ["car-1"])
    v1 = os.urandom(20_000)
    rs.image.add_image("app-1.bin", v1, hardware_ids=["hw-a"], version="1.0.0", release_counter=1)
    rs.image.add_image("app-2.bin", _release(v1, 3), hardware_ids=["hw-a"], version="1.1.0",
                       release_counter=2, delta_from=["1.0.0"])  # fmt: skip
    return rs


def _custom(rs: RepoSet, ecu: str) -> dict[str, object]:
    return rs.director("car-1").assignments()[ecu]


def test_assign_with_a_delta_base_signs_format_2(repos: RepoSet) -> None:
    d = repos.director("car-1")
    img = repos.image.image("app-2.bin")
    v1_sha = repos.image.image("app-1.bin").sha256
    base = resolve_base(repos.image.deltas(img.name), "1.0.0")
    assert base == v1_sha == resolve_base(repos.image.deltas(img.name), v1_sha)
    data = d.assign("ecu-a", "hw-a", img, delta_base=base)
    ins = decode_instruction(data)
    assert ins.base_sha256 == bytes.fromhex(v1_sha) and ins.sha256.hex() == img.sha256
    assert messages.decode_instruction(data)[0] == messages.INSTR_FMT_DELTA
    assert verify_instruction(data, _sigs(repos), d.instruction_public_keys()) == 1
    assert _custom(repos, "ecu-a")["delta_base"] == v1_sha
    # without a base: format 1, as before
    data1 = d.assign("ecu-b", "hw-a", img)
    assert decode_instruction(data1).base_sha256 is None
    assert messages.decode_instruction(data1)[0] == messages.INSTR_FMT
    assert "delta_base" not in _custom(repos, "ecu-b")


def _sigs(rs: RepoSet) -> list[tuple[bytes, bytes]]:
    pairs: list[list[str]] = _custom(rs, "ecu-a")["instruction_sigs"]  # type: ignore[assignment]
    return [(bytes.fromhex(k), bytes.fromhex(s)) for k, s in pairs]


def test_bad_delta_bases_are_refused(repos: RepoSet) -> None:
    d = repos.director("car-1")
    img = repos.image.image("app-2.bin")
    with pytest.raises(RepoError, match="no listed patch"):
        resolve_base(repos.image.deltas(img.name), "0.9.0")
    for bad in ("zz", "00" * 31, "00" * 33):
        with pytest.raises(RepoError, match="delta base"):
            d.assign("ecu-a", "hw-a", img, delta_base=bad)


def test_cli_assign_delta_base(repos: RepoSet, capsys: pytest.CaptureFixture[str]) -> None:
    d = repos.director("car-1")
    common = ["repo", "assign", "--repo", str(d.path), "--image-repo", str(repos.image.path),
              "--ecu", "ecu-a", "--hw", "hw-a", "--target", "app-2.bin"]  # fmt: skip
    assert cli_main([*common, "--delta-base", "1.0.0"]) == 0
    v1_sha = repos.image.image("app-1.bin").sha256
    assert f"a patch from {v1_sha[:16]} allowed" in capsys.readouterr().out
    assert _custom(repos, "ecu-a")["delta_base"] == v1_sha
    assert cli_main([*common, "--delta-base", "7.7.7"]) != 0
    assert "no listed patch starts from '7.7.7'" in capsys.readouterr().err
