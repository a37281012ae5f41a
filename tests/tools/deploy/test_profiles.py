"""Board profiles: every boards/<name>/board.json is valid, and the validator catches bad ones."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from otalink.host.tools.deploy.errors import ProfileError, UnknownBoardError
from otalink.host.tools.deploy.profile import (
    MPY_ARCHES,
    Board,
    board_schema,
    boards_dir,
    list_boards,
    load_board,
    rxbuf_needed,
)

BOARDS = boards_dir()
REQUIRED = {"unix", "esp32", "rp2", "stm32"}


def _raw(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((BOARDS / name / "board.json").read_text())
    return data


def test_required_boards_present() -> None:
    assert set(list_boards()) >= REQUIRED


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_profile_valid_and_typed(name: str) -> None:
    b = load_board(name)
    assert b.name == name and b.problems() == []
    assert b.micropython.arch in MPY_ARCHES
    # The UART receive buffer holds a whole window of DATA frames (the device grants no more).
    assert b.uart.rxbuf >= rxbuf_needed(b.link.max_payload, b.link.window)
    # Both slots and the state area lie inside the otalink region without overlap.
    spans = sorted(
        [(b.slots.state_offset, b.slots.state_sectors * b.flash.erase_size)]
        + [(o, b.slots.size) for o in b.slots.offsets]
    )
    for (a, size), (nxt, _) in itertools.pairwise(spans):
        assert a + size <= nxt
    assert spans[-1][0] + spans[-1][1] <= b.flash.region.size


def _schema_errors(profile: dict[str, Any]) -> list[str]:
    """What the committed boards/board.schema.json says of ``profile`` (an independent
    validator, jsonschema-rs, reading the generated file)."""
    schema = json.loads((BOARDS / "board.schema.json").read_text())
    return [e.message for e in jsonschema_rs.validator_for(schema).iter_errors(profile)]


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_profile_matches_json_schema(name: str) -> None:
    assert _schema_errors(_raw(name)) == []


def test_committed_schema_is_the_generated_one() -> None:
    """boards/board.schema.json is generated from the Board model: run `make schemas`."""
    assert (BOARDS / "board.schema.json").read_text(encoding="utf-8") == board_schema()


def test_command_keys_file_is_a_profile_key() -> None:
    """device/config.py reads the board's keys.command_keys file: the model and the schema
    take it (a non-empty path), and refuse it null or empty."""
    d = _raw("unix")
    d["keys"]["command_keys"] = "keys/command_keys.bin"
    assert Board.from_dict(d, source="x").keys.command_keys == "keys/command_keys.bin"
    assert _schema_errors(d) == []
    assert load_board("unix").keys.command_keys is None  # optional
    for bad in (None, "", 7):
        d["keys"]["command_keys"] = bad
        with pytest.raises(ProfileError, match=r"keys\.command_keys"):
            Board.from_dict(d, source="x")
        assert _schema_errors(d) != []


@pytest.mark.parametrize(
    "version", ["1.2\u00b2.0", "\u0661.\u0662\u0662.\u0660", "1.22", "1.22.0 "]
)
def test_min_version_is_ascii_x_y_z(version: str) -> None:
    """A superscript or Arabic-Indic digit passes str.isdigit(); it is no version digit: a
    clean profile error naming the field, never a ValueError from int()."""
    d = _raw("esp32")
    d["micropython"]["min_version"] = version
    with pytest.raises(ProfileError, match=r"micropython\.min_version"):
        Board.from_dict(d, source="x")
    assert _schema_errors(d) != []


def test_what_an_update_replaces() -> None:
    # esp32: firmware through esp32.Partition OTA plus bundles; rp2/stm32: bundles only.
    esp = load_board("esp32")
    assert esp.updates == ("bundle", "firmware") and esp.firmware is not None
    assert esp.firmware.partitions == ("ota_0", "ota_1")
    for name, device, arch in (
        ("rp2", "rp2.Flash", "armv6m"),
        ("stm32", "pyb.Flash", "armv7emsp"),
        ("unix", "nor-file", "x64"),
    ):
        b = load_board(name)
        assert b.updates == ("bundle",) and b.firmware is None
        assert b.flash.device == device and b.micropython.arch == arch
    assert esp.micropython.arch == "xtensawin"
    # Default MicroPython rx buffers (256 on esp32/rp2, 64 on stm32) would be far too small.
    assert all(load_board(n).uart.rxbuf > 256 for n in REQUIRED)


def _mutated(**changes: Any) -> dict[str, Any]:
    d = copy.deepcopy(_raw("rp2"))
    for path, value in changes.items():
        node = d
        keys = path.split("__")
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return d


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"uart__rxbuf": 256}, "uart.rxbuf 256 <"),
        ({"slots__offsets": [8192, 200000]}, "overlaps"),
        ({"slots__size": 600000}, "outside flash.region"),
        ({"slots__offsets": [8192, 528385]}, "not aligned"),
        (
            {
                "firmware": {
                    "device": "esp32.Partition",
                    "partitions": ["a", "b"],
                    "size": 4096,
                    "erase_size": 4096,
                    "write_size": 256,
                }
            },
            "'firmware' in updates",
        ),
        ({"micropython__arch": "z80"}, "unknown"),
        ({"uart__id": None}, "uart: kind 'machine.UART'"),
        ({"link__max_payload": 100}, "link.max_payload"),
        ({"flash__region": {"offset": 1048576, "size": 1048576}}, "outside the flash device"),
        ({"deploy__lib_dir": "/lib"}, "lib_dir"),
        ({"schema": 2}, "schema must be 1"),
        ({"schema": True}, "schema must be 1"),
        # JSON Schema counts 2.0 as the integer 2; the model (and the device) want an int
        ({"slots__count": 2.0}, "slots.count: should be an integer"),
    ],
)
def test_validator_rejects(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ProfileError) as info:
        Board.from_dict(_mutated(**changes), source="mutated")
    assert message in str(info.value)


# Shapes: the model refuses them, and so does the schema generated from it.
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"firmware": {"device": "rp2.Flash", "partitions": ["a", "b"], "size": 4096,
                       "erase_size": 4096, "write_size": 256}}, "firmware.device"),
        ({"uart__baud": True}, "uart.baud"),
        ({"uart__buad": 9600}, "uart.buad is not a known key"),
        ({"flash__label": None}, "flash.label: may be left out, but not null"),
        ({"flash__deflate_wbits": True}, "flash.deflate_wbits"),
        ({"flash__deflate_wbits": 8}, "flash.deflate_wbits"),
        ({"slots__offsets": [8192]}, "slots.offsets"),
        ({"updates": ["bundle", "bundle"]}, "updates: lists a kind twice"),
        ({"uart__tx": -1}, "uart.tx"),
        ({"name": "RP 2"}, "name"),
        ({"micropython__mpy_version": 5}, "micropython.mpy_version"),
    ],
)  # fmt: skip
def test_shapes_refused_by_model_and_schema(changes: dict[str, Any], message: str) -> None:
    d = _mutated(**changes)
    with pytest.raises(ProfileError) as info:
        Board.from_dict(d, source="mutated")
    assert message in str(info.value)
    assert _schema_errors(d) != []


def test_every_problem_listed_with_its_field() -> None:
    d = _mutated(uart__baud="fast", heap__budget=1024, trial_boots=0)
    with pytest.raises(ProfileError) as info:
        Board.from_dict(d, source="x")
    text = str(info.value)
    assert all(k in text for k in ("uart.baud", "heap.budget", "trial_boots")), text


def test_missing_field_named() -> None:
    d = _raw("esp32")
    del d["uart"]["baud"]
    with pytest.raises(ProfileError, match=r"uart\.baud is missing"):
        Board.from_dict(d, source="x")


def test_unknown_board_lists_known() -> None:
    with pytest.raises(UnknownBoardError, match="esp32"):
        load_board("z80-devkit")


def test_load_by_path_checks_folder_name(tmp_path: Path) -> None:
    d = _raw("unix")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "board.json").write_text(json.dumps(d))
    with pytest.raises(ProfileError, match="differs from its folder"):
        load_board(tmp_path / "other" / "board.json")
    assert load_board("unix", root=BOARDS).name == "unix"


def test_freeze_manifest_names_the_agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run boards/manifest.py the way MicroPython's manifestfile.py does (cwd = its folder),
    with recording stand-ins for include()/package(), and check what it would freeze."""
    import os

    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def rec(name: str) -> Any:
        return lambda *a, **k: calls.append((name, a, k))

    manifest = BOARDS / "manifest.py"
    work = tmp_path / "repo"
    (work / "boards").mkdir(parents=True)
    (work / "boards" / "manifest.py").write_text(manifest.read_text())
    for pkg in ("protocol", "device"):
        os.symlink(BOARDS.parent / pkg, work / pkg)
    monkeypatch.chdir(work / "boards")
    g = {"include": rec("include"), "package": rec("package"), "module": rec("module")}
    exec(compile(manifest.read_text(), str(manifest), "exec"), g)
    assert ("include", ("$(BOARD_DIR)/manifest.py",), {}) in calls
    pkgs = [c for c in calls if c[0] == "package"]
    assert len(pkgs) == 1 and pkgs[0][1] == ("otalink",)
    stage = Path(pkgs[0][2]["base_path"])
    # What the manifest walker would find: otalink/{protocol,device}/*.py through the links.
    found = {
        str(Path(dp, f).relative_to(stage))
        for dp, _, fs in os.walk(stage / "otalink", followlinks=True)
        for f in fs
        if f.endswith(".py")
    }
    assert "otalink/__init__.py" in found
    assert "otalink/device/main.py" in found and "otalink/protocol/frame.py" in found
    assert "otalink/device/config.py" in found
