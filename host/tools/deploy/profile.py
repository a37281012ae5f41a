"""Board profiles: ``boards/<name>/board.json`` validated by pydantic models.

Public interface (stable):
    boards_dir() -> Path                          # OTALINK_BOARDS, else <repo>/boards
    list_boards(root: Path | None = None) -> list[str]
    load_board(name_or_path: str | Path, root: Path | None = None) -> Board
    Board.from_dict(data: dict, source: str = "<dict>") -> Board   (validates; ProfileError)
    Board fields: name title port micropython uart link flash slots firmware updates keys heap
                  trial_boots reset deploy; heap_budget, min_version, raw (the JSON as loaded),
                  path; problems() (the rules across fields)
    board_schema() -> str                         # boards/board.schema.json, generated from Board
    rxbuf_needed(max_payload, window) -> int
    MPY_ARCHES: dict[str, int]                    # arch name -> sys.implementation._mpy arch code

The models give the shapes, defaults and boards/board.schema.json (``make schemas`` writes
it; a test fails when the committed file differs); ``Board.problems`` the rules across fields.
The device agent reads the same file with its own reader (device/config.py, MicroPython).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from otalink.host.tools.deploy.errors import ProfileError, UnknownBoardError
from otalink.host.validation import (
    Absent,
    IntChoice,
    NonEmpty,
    Section,
    Uint,
    describe,
    json_schema,
)
from pydantic import (
    AfterValidator,
    Field,
    JsonValue,
    PrivateAttr,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

SCHEMA_VERSION = 1
# Arch codes in bits 10.. of sys.implementation._mpy (py/persistentcode.h MP_NATIVE_ARCH_*).
MPY_ARCHES: dict[str, int] = {
    "none": 0, "x86": 1, "x64": 2, "armv6": 3, "armv6m": 4, "armv7m": 5, "armv7em": 6,
    "armv7emsp": 7, "armv7emdp": 8, "xtensa": 9, "xtensawin": 10, "rv32imc": 11, "rv64imc": 12,
}  # fmt: skip
Arch = Literal["x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp",
               "xtensa", "xtensawin", "rv32imc", "rv64imc"]  # fmt: skip
# Largest DATA message overhead inside a frame: array(3) + type + uint32 offset + bstr header.
DATA_MSG_OVERHEAD = 16
FRAME_OVERHEAD = 10
MAX_PAYLOAD_ABS = 8192
MIN_PAYLOAD = 256
_VERSION = re.compile(r"([0-9]+)\.([0-9]+)\.([0-9]+)", re.ASCII)  # ASCII digits only: no "²"

Positive = Annotated[StrictInt, Field(ge=1)]
Baud = Annotated[StrictInt, Field(ge=1200)]
Pin = Uint | NonEmpty | None
Two = Field(min_length=2, max_length=2)


def _unique(kinds: tuple[str, ...]) -> tuple[str, ...]:
    if len(set(kinds)) != len(kinds):
        raise ValueError("lists a kind twice")
    return kinds


class MicroPythonReq(Section):
    """The MicroPython the agent needs on this board."""

    min_version: Annotated[StrictStr, Field(pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$")]
    mpy_version: Annotated[StrictInt, Field(ge=6)]
    arch: Arch

    @property
    def arch_code(self) -> int:
        return MPY_ARCHES[self.arch]


class Uart(Section):
    """The agent's serial line: ``machine.UART`` on boards, a pty on the unix port."""

    kind: Literal["machine.UART", "pty"]
    id: Uint | None
    tx: Pin
    rx: Pin
    baud: Baud
    max_baud: Baud
    rxbuf: Annotated[StrictInt, Field(ge=64)]
    txbuf: Uint


class Link(Section):
    """Largest frame payload the device accepts; bytes it grants past its offset."""

    max_payload: Annotated[StrictInt, Field(ge=MIN_PAYLOAD, le=MAX_PAYLOAD_ABS)]
    window: Annotated[StrictInt, Field(ge=MIN_PAYLOAD)]


class Region(Section):
    """otalink's area inside the block device."""

    offset: Uint
    size: Positive


class Flash(Section):
    """The block device and the otalink region in it (slot/state offsets are region-relative)."""

    device: Literal["nor-file", "esp32.Partition", "rp2.Flash", "pyb.Flash"]
    size: Uint
    erase_size: Positive
    write_size: Positive
    region: Region
    label: Absent[NonEmpty] = None
    path: Absent[NonEmpty] = None
    deflate_wbits: Absent[IntChoice[Literal[0, 9, 10, 11, 12, 13, 14, 15]]] = Field(
        None, description="raw-deflate window bits the ECU announces (0 = no compression)"
    )


class Slots(Section):
    """Two A/B slots for application bundles and the persisted slot state."""

    count: IntChoice[Literal[2]]
    size: Positive
    offsets: Annotated[tuple[Uint, ...], Two]
    state_offset: Uint
    state_sectors: Annotated[StrictInt, Field(ge=2)]


class Firmware(Section):
    """The firmware's OTA partitions (esp32 only)."""

    device: Literal["esp32.Partition"]
    partitions: Annotated[tuple[NonEmpty, ...], Two]
    size: Positive
    erase_size: Positive
    write_size: Positive


class Keys(Section):
    """Key files on the board's filesystem (paths relative to its root)."""

    store: Literal["file"]
    ecu_key: NonEmpty
    director_keys: NonEmpty
    command_keys: Absent[NonEmpty] = Field(
        None, description="trusted command keys, 32-byte public keys concatenated"
    )


class Heap(Section):
    """Heap the agent may use (bytes)."""

    budget: Annotated[StrictInt, Field(ge=16384)]


class Reset(Section):
    """How the agent resets, and how a bench resets the board."""

    soft: Literal["machine.reset", "exit"]
    hard: Literal["rts-en", "run-pin", "rst-pin", "kill-restart", "power"]


class DeploySpec(Section):
    """Where and how ``otalink device deploy`` installs the agent."""

    lib_dir: Annotated[StrictStr, Field(pattern=r"^[^/]")]
    soft_reset: StrictBool
    repl_baud: Baud
    config: NonEmpty


class Board(Section):
    """An otalink board profile (``boards/<name>/board.json``), schema 1."""

    schema_version: IntChoice[Literal[1]] = Field(alias="schema")
    name: Annotated[StrictStr, Field(pattern=r"^[a-z0-9_-]+$")]
    title: NonEmpty
    port: Literal["unix", "esp32", "rp2", "stm32"]
    micropython: MicroPythonReq
    uart: Uart
    link: Link
    flash: Flash
    slots: Slots
    firmware: Firmware | None
    updates: Annotated[
        tuple[Literal["bundle", "firmware"], ...],
        Field(min_length=1, json_schema_extra={"uniqueItems": True}),
        AfterValidator(_unique),
    ]
    keys: Keys
    heap: Heap
    trial_boots: Annotated[StrictInt, Field(ge=1, le=10)]
    reset: Reset
    deploy: DeploySpec
    _raw: dict[str, JsonValue] = PrivateAttr(default_factory=dict)
    _path: Path | None = PrivateAttr(default=None)

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>", path: Path | None = None) -> Board:
        """Validate ``data`` (parsed JSON) and build the profile, or raise ProfileError."""
        if not isinstance(data, dict):
            raise ProfileError(f"{source}: profile must be an object")
        if type(data.get("schema")) is not int or data["schema"] != SCHEMA_VERSION:
            raise ProfileError(f"{source}: schema must be {SCHEMA_VERSION}")
        try:
            board = cls.model_validate(data)
        except ValidationError as exc:
            raise ProfileError(f"{source}: {describe(exc)}") from None
        board._raw, board._path = data, path
        return board

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if problems := self.problems():
            raise ValueError("; ".join(problems))
        return self

    @property
    def raw(self) -> dict[str, JsonValue]:
        """The profile's JSON as loaded (what deploy copies to the board)."""
        return self._raw

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def heap_budget(self) -> int:
        return self.heap.budget

    @property
    def min_version(self) -> tuple[int, int, int]:
        v = _version_tuple(self.micropython.min_version)
        assert v is not None  # validated
        return v

    def problems(self) -> list[str]:
        """Every rule across fields the profile breaks (empty when valid)."""
        p: list[str] = []
        u, lk, f, s = self.uart, self.link, self.flash, self.slots
        if not 0 < u.baud <= u.max_baud:
            p.append("uart: need 0 < baud <= max_baud")
        if self.port == "unix":
            if u.kind != "pty":
                p.append("uart.kind must be 'pty' on the unix port")
        elif u.kind != "machine.UART" or u.id is None or u.tx is None or u.rx is None:
            p.append("uart: kind 'machine.UART' with id, tx and rx is required on a board")
        if lk.window < lk.max_payload:
            p.append("link.window smaller than one frame")
        elif u.rxbuf < (need := rxbuf_needed(lk.max_payload, lk.window)):
            # Everything the host may send inside one window must fit the UART receive buffer
            # while the device is busy writing flash: data plus each frame's overhead.
            p.append(f"uart.rxbuf {u.rxbuf} < {need} needed for link.window {lk.window}")
        if (f.device == "nor-file") != (self.port == "unix"):
            p.append("flash.device 'nor-file' is the unix port's, and only its")
        if f.device == "nor-file" and not f.path:
            p.append("flash.path is required for a nor-file device")
        if f.device == "esp32.Partition" and not f.label:
            p.append("flash.label is required for esp32.Partition")
        es = f.erase_size if _pow2(f.erase_size) else 1
        if not _pow2(f.erase_size) or not _pow2(f.write_size) or f.write_size > f.erase_size:
            p.append("flash: erase_size and write_size must be powers of two, write <= erase")
        if f.region.offset % es or f.region.size % es:
            p.append("flash.region must be aligned to erase_size")
        if f.region.offset + f.region.size > f.size:
            p.append("flash.region outside the flash device")
        spans = [(s.state_offset, s.state_sectors * es, "state")]
        spans += [(off, s.size, f"slot {i}") for i, off in enumerate(s.offsets)]
        for start, size, what in spans:
            if start % es or size % es:
                p.append(f"{what} not aligned to erase_size")
            if start + size > f.region.size:
                p.append(f"{what} outside flash.region")
        for (a, asz, an), (b, _bsz, bn) in itertools.pairwise(sorted(spans)):
            if a + asz > b:
                p.append(f"{an} overlaps {bn}")
        if "bundle" not in self.updates:
            p.append("updates must include 'bundle'")
        if ("firmware" in self.updates) != (self.firmware is not None):
            p.append("'firmware' in updates iff a firmware section is given")
        if self.firmware is not None and self.port != "esp32":
            p.append("firmware updates from MicroPython exist only on esp32 (esp32.Partition)")
        if ".." in self.deploy.lib_dir.split("/"):
            p.append("deploy.lib_dir must be relative to the board's filesystem root")
        return p


def board_schema() -> str:
    """The text of boards/board.schema.json (JSON Schema 2020-12), generated from :class:`Board`."""
    return json_schema(
        Board,
        **{
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://otalink.invalid/boards/board.schema.json",
            "title": f"otalink board profile (boards/<name>/board.json), schema {SCHEMA_VERSION}",
            "description": "Generated from otalink.host.tools.deploy.profile.Board (make "
            "schemas): do not edit. Rules across fields (rx buffer vs window, slot layout "
            "inside the region, alignment) are checked by Board.problems().",
        },
    )


def rxbuf_needed(max_payload: int, window: int) -> int:
    """UART receive buffer a device needs to hold one full window of DATA frames."""
    frames = math.ceil(window / (max_payload - DATA_MSG_OVERHEAD))
    return window + frames * (FRAME_OVERHEAD + DATA_MSG_OVERHEAD)


def _pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _version_tuple(text: str) -> tuple[int, int, int] | None:
    m = _VERSION.fullmatch(text)
    return None if m is None else (int(m[1]), int(m[2]), int(m[3]))


def boards_dir() -> Path:
    """Where profiles live: ``$OTALINK_BOARDS``, else ``<repo>/boards``."""
    env = os.environ.get("OTALINK_BOARDS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "boards"


def list_boards(root: Path | None = None) -> list[str]:
    """Names of every ``<root>/<name>/board.json``, sorted."""
    base = root or boards_dir()
    return sorted(p.parent.name for p in base.glob("*/board.json"))


def load_board(name_or_path: str | Path, root: Path | None = None) -> Board:
    """Load and validate a profile by board name, or from a path to a ``board.json``."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".json" or candidate.is_file():
        path = candidate
    else:
        name = str(name_or_path)
        if not name or "/" in name or name.startswith("."):
            raise UnknownBoardError(f"bad board name {name!r}")
        path = (root or boards_dir()) / name / "board.json"
    if not path.is_file():
        known = ", ".join(list_boards(root)) or "none"
        raise UnknownBoardError(f"no board profile {str(name_or_path)!r} (known: {known})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProfileError(f"{path}: not readable JSON: {exc}") from exc
    board = Board.from_dict(data, source=str(path), path=path)
    if path.parent.name != board.name and path.name == "board.json":
        raise ProfileError(f"{path}: name {board.name!r} differs from its folder")
    return board
