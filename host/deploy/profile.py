"""Board profiles: ``boards/<name>/board.json`` loaded into typed, validated objects.

Public interface (stable):
    boards_dir() -> Path                          # OTALINK_BOARDS, else <repo>/boards
    list_boards(root: Path | None = None) -> list[str]
    load_board(name_or_path: str | Path, root: Path | None = None) -> Board
    Board.from_dict(data: dict, source: str = "<dict>") -> Board   (validates; ProfileError)
    Board fields: name title port micropython uart link flash slots firmware updates keys
                  heap_budget trial_boots reset deploy raw (the JSON as loaded), path
    rxbuf_needed(max_payload, window) -> int
    MPY_ARCHES: dict[str, int]                    # arch name -> sys.implementation._mpy arch code

The JSON schema (documented in boards/README.md, machine-readable in boards/board.schema.json)
is data only; the device agent reads the same file (copied to the board by deploy).
"""

from __future__ import annotations

import itertools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otalink.host.deploy.errors import ProfileError, UnknownBoardError

SCHEMA_VERSION = 1
# Arch codes in bits 10.. of sys.implementation._mpy (py/persistentcode.h MP_NATIVE_ARCH_*).
MPY_ARCHES: dict[str, int] = {
    "none": 0,
    "x86": 1,
    "x64": 2,
    "armv6": 3,
    "armv6m": 4,
    "armv7m": 5,
    "armv7em": 6,
    "armv7emsp": 7,
    "armv7emdp": 8,
    "xtensa": 9,
    "xtensawin": 10,
    "rv32imc": 11,
    "rv64imc": 12,
}
PORTS = ("unix", "esp32", "rp2", "stm32")
FLASH_DEVICES = ("nor-file", "esp32.Partition", "rp2.Flash", "pyb.Flash")
UPDATE_KINDS = ("bundle", "firmware")
# Largest DATA message overhead inside a frame: array(3) + type + uint32 offset + bstr header.
DATA_MSG_OVERHEAD = 16
FRAME_OVERHEAD = 10
MAX_PAYLOAD_ABS = 8192
MIN_PAYLOAD = 256


@dataclass(frozen=True)
class MicroPythonReq:
    min_version: str
    mpy_version: int
    arch: str

    @property
    def arch_code(self) -> int:
        return MPY_ARCHES[self.arch]


@dataclass(frozen=True)
class Uart:
    """The agent's serial line: ``machine.UART`` on boards, a pty on the unix port."""

    kind: str
    id: int | None
    tx: int | str | None
    rx: int | str | None
    baud: int
    max_baud: int
    rxbuf: int
    txbuf: int


@dataclass(frozen=True)
class Link:
    max_payload: int
    window: int


@dataclass(frozen=True)
class Region:
    offset: int
    size: int


@dataclass(frozen=True)
class Flash:
    """The block device and the otalink region in it (slot/state offsets are region-relative)."""

    device: str
    size: int
    erase_size: int
    write_size: int
    region: Region
    label: str | None = None
    path: str | None = None


@dataclass(frozen=True)
class Slots:
    count: int
    size: int
    offsets: tuple[int, ...]
    state_offset: int
    state_sectors: int


@dataclass(frozen=True)
class Firmware:
    device: str
    partitions: tuple[str, ...]
    size: int
    erase_size: int
    write_size: int


@dataclass(frozen=True)
class Keys:
    store: str
    ecu_key: str
    director_keys: str


@dataclass(frozen=True)
class Reset:
    soft: str
    hard: str


@dataclass(frozen=True)
class DeploySpec:
    lib_dir: str
    soft_reset: bool
    repl_baud: int
    config: str


@dataclass(frozen=True)
class Board:
    """One validated board profile."""

    name: str
    title: str
    port: str
    micropython: MicroPythonReq
    uart: Uart
    link: Link
    flash: Flash
    slots: Slots
    firmware: Firmware | None
    updates: tuple[str, ...]
    keys: Keys
    heap_budget: int
    trial_boots: int
    reset: Reset
    deploy: DeploySpec
    raw: dict[str, Any]
    path: Path | None = None

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>", path: Path | None = None) -> Board:
        """Validate ``data`` (parsed JSON) and build the profile, or raise ProfileError."""
        r = _Reader(source)
        d = r.obj(data, "profile")
        if r.int_(d, "schema") != SCHEMA_VERSION:
            raise ProfileError(f"{source}: schema must be {SCHEMA_VERSION}")
        mp = r.obj(r.get(d, "micropython"), "micropython")
        u = r.obj(r.get(d, "uart"), "uart")
        lk = r.obj(r.get(d, "link"), "link")
        fl = r.obj(r.get(d, "flash"), "flash")
        rg = r.obj(r.get(fl, "region", "flash"), "flash.region")
        sl = r.obj(r.get(d, "slots"), "slots")
        ks = r.obj(r.get(d, "keys"), "keys")
        hp = r.obj(r.get(d, "heap"), "heap")
        rs = r.obj(r.get(d, "reset"), "reset")
        dp = r.obj(r.get(d, "deploy"), "deploy")
        fw_raw = r.get(d, "firmware")
        firmware = None
        if fw_raw is not None:
            fw = r.obj(fw_raw, "firmware")
            firmware = Firmware(
                device=r.str_(fw, "device", "firmware"),
                partitions=tuple(r.str_list(fw, "partitions", "firmware")),
                size=r.int_(fw, "size", "firmware"),
                erase_size=r.int_(fw, "erase_size", "firmware"),
                write_size=r.int_(fw, "write_size", "firmware"),
            )
        board = cls(
            name=r.str_(d, "name"),
            title=r.str_(d, "title"),
            port=r.str_(d, "port"),
            micropython=MicroPythonReq(
                min_version=r.str_(mp, "min_version", "micropython"),
                mpy_version=r.int_(mp, "mpy_version", "micropython"),
                arch=r.str_(mp, "arch", "micropython"),
            ),
            uart=Uart(
                kind=r.str_(u, "kind", "uart"),
                id=r.opt_int(u, "id", "uart"),
                tx=r.pin(u, "tx"),
                rx=r.pin(u, "rx"),
                baud=r.int_(u, "baud", "uart"),
                max_baud=r.int_(u, "max_baud", "uart"),
                rxbuf=r.int_(u, "rxbuf", "uart"),
                txbuf=r.int_(u, "txbuf", "uart"),
            ),
            link=Link(r.int_(lk, "max_payload", "link"), r.int_(lk, "window", "link")),
            flash=Flash(
                device=r.str_(fl, "device", "flash"),
                size=r.int_(fl, "size", "flash"),
                erase_size=r.int_(fl, "erase_size", "flash"),
                write_size=r.int_(fl, "write_size", "flash"),
                region=Region(r.int_(rg, "offset", "flash.region"), r.int_(rg, "size", "region")),
                label=r.opt_str(fl, "label", "flash"),
                path=r.opt_str(fl, "path", "flash"),
            ),
            slots=Slots(
                count=r.int_(sl, "count", "slots"),
                size=r.int_(sl, "size", "slots"),
                offsets=tuple(r.int_list(sl, "offsets", "slots")),
                state_offset=r.int_(sl, "state_offset", "slots"),
                state_sectors=r.int_(sl, "state_sectors", "slots"),
            ),
            firmware=firmware,
            updates=tuple(r.str_list(d, "updates")),
            keys=Keys(
                store=r.str_(ks, "store", "keys"),
                ecu_key=r.str_(ks, "ecu_key", "keys"),
                director_keys=r.str_(ks, "director_keys", "keys"),
            ),
            heap_budget=r.int_(hp, "budget", "heap"),
            trial_boots=r.int_(d, "trial_boots"),
            reset=Reset(r.str_(rs, "soft", "reset"), r.str_(rs, "hard", "reset")),
            deploy=DeploySpec(
                lib_dir=r.str_(dp, "lib_dir", "deploy"),
                soft_reset=r.bool_(dp, "soft_reset", "deploy"),
                repl_baud=r.int_(dp, "repl_baud", "deploy"),
                config=r.str_(dp, "config", "deploy"),
            ),
            raw=d,
            path=path,
        )
        problems = board.problems()
        if problems:
            raise ProfileError(f"{source}: " + "; ".join(problems))
        return board

    def problems(self) -> list[str]:
        """Every consistency rule the profile breaks (empty when valid)."""
        p: list[str] = []
        if self.port not in PORTS:
            p.append(f"port {self.port!r} not one of {PORTS}")
        if self.micropython.arch not in MPY_ARCHES:
            p.append(f"micropython.arch {self.micropython.arch!r} unknown")
        if self.micropython.mpy_version < 6:
            p.append("micropython.mpy_version must be >= 6 (MicroPython 1.19+)")
        if _version_tuple(self.micropython.min_version) is None:
            p.append(f"micropython.min_version {self.micropython.min_version!r} is not X.Y.Z")
        u = self.uart
        if not 0 < u.baud <= u.max_baud:
            p.append("uart: need 0 < baud <= max_baud")
        if self.port == "unix":
            if u.kind != "pty":
                p.append("uart.kind must be 'pty' on the unix port")
        elif u.kind != "machine.UART" or u.id is None or u.tx is None or u.rx is None:
            p.append("uart: kind 'machine.UART' with id, tx and rx is required on a board")
        lk = self.link
        if not MIN_PAYLOAD <= lk.max_payload <= MAX_PAYLOAD_ABS:
            p.append(f"link.max_payload must be in [{MIN_PAYLOAD}, {MAX_PAYLOAD_ABS}]")
        elif lk.window < lk.max_payload:
            p.append("link.window smaller than one frame")
        else:
            # Everything the host may send inside one window must fit the UART receive buffer
            # while the device is busy writing flash: data plus each frame's overhead.
            need = rxbuf_needed(lk.max_payload, lk.window)
            if u.rxbuf < need:
                p.append(f"uart.rxbuf {u.rxbuf} < {need} needed for link.window {lk.window}")
        f = self.flash
        if f.device not in FLASH_DEVICES:
            p.append(f"flash.device {f.device!r} not one of {FLASH_DEVICES}")
        if (f.device == "nor-file") != (self.port == "unix"):
            p.append("flash.device 'nor-file' is the unix port's, and only its")
        if f.device == "nor-file" and not f.path:
            p.append("flash.path is required for a nor-file device")
        if f.device == "esp32.Partition" and not f.label:
            p.append("flash.label is required for esp32.Partition")
        es = f.erase_size if _pow2(f.erase_size) else 1
        if not _pow2(f.erase_size) or not _pow2(f.write_size) or f.write_size > f.erase_size:
            p.append("flash: erase_size and write_size must be powers of two, write <= erase")
        rg = f.region
        if rg.offset % es or rg.size % es:
            p.append("flash.region must be aligned to erase_size")
        if rg.size <= 0 or rg.offset + rg.size > f.size:
            p.append("flash.region outside the flash device")
        s = self.slots
        spans: list[tuple[int, int, str]] = [(s.state_offset, s.state_sectors * es, "state")]
        if s.count != 2 or len(s.offsets) != 2:
            p.append("slots: exactly two slots (A/B)")
        if s.state_sectors < 2:
            p.append("slots.state_sectors must be >= 2 (state is written alternately)")
        for i, off in enumerate(s.offsets):
            spans.append((off, s.size, f"slot {i}"))
        for start, size, what in spans:
            if start % es or size % es or size == 0:
                p.append(f"{what} not aligned to erase_size")
            if start + size > rg.size:
                p.append(f"{what} outside flash.region")
        spans.sort()
        for (a, asz, an), (b, _bsz, bn) in itertools.pairwise(spans):
            if a + asz > b:
                p.append(f"{an} overlaps {bn}")
        for kind in self.updates:
            if kind not in UPDATE_KINDS:
                p.append(f"updates: unknown kind {kind!r}")
        if "bundle" not in self.updates:
            p.append("updates must include 'bundle'")
        if ("firmware" in self.updates) != (self.firmware is not None):
            p.append("'firmware' in updates iff a firmware section is given")
        if self.firmware is not None:
            if self.port != "esp32" or self.firmware.device != "esp32.Partition":
                p.append("firmware updates from MicroPython exist only on esp32 (esp32.Partition)")
            if len(self.firmware.partitions) != 2:
                p.append("firmware.partitions: exactly two OTA partitions")
        if self.keys.store != "file":
            p.append("keys.store must be 'file'")
        if self.heap_budget < 16384:
            p.append("heap.budget below 16 KiB")
        if not 1 <= self.trial_boots <= 10:
            p.append("trial_boots must be in 1..10")
        lib = self.deploy.lib_dir
        if lib.startswith("/") or ".." in lib.split("/"):
            p.append("deploy.lib_dir must be relative to the board's filesystem root")
        return p

    @property
    def min_version(self) -> tuple[int, int, int]:
        v = _version_tuple(self.micropython.min_version)
        assert v is not None  # validated
        return v


def rxbuf_needed(max_payload: int, window: int) -> int:
    """UART receive buffer a device needs to hold one full window of DATA frames."""
    frames = math.ceil(window / (max_payload - DATA_MSG_OVERHEAD))
    return window + frames * (FRAME_OVERHEAD + DATA_MSG_OVERHEAD)


class _Reader:
    """Typed field access that reports the first problem with the file and field name."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, what: str) -> ProfileError:
        return ProfileError(f"{self.source}: {what}")

    def obj(self, v: Any, what: str) -> dict[str, Any]:
        if not isinstance(v, dict):
            raise self.fail(f"{what} must be an object")
        return v

    def get(self, d: dict[str, Any], key: str, where: str = "profile") -> Any:
        if key not in d:
            raise self.fail(f"{where}.{key} is missing")
        return d[key]

    def int_(self, d: dict[str, Any], key: str, where: str = "profile") -> int:
        v = self.get(d, key, where)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise self.fail(f"{where}.{key} must be a non-negative integer")
        return v

    def opt_int(self, d: dict[str, Any], key: str, where: str) -> int | None:
        if d.get(key) is None:
            return None
        return self.int_(d, key, where)

    def str_(self, d: dict[str, Any], key: str, where: str = "profile") -> str:
        v = self.get(d, key, where)
        if not isinstance(v, str) or not v:
            raise self.fail(f"{where}.{key} must be a non-empty string")
        return v

    def opt_str(self, d: dict[str, Any], key: str, where: str) -> str | None:
        if d.get(key) is None:
            return None
        return self.str_(d, key, where)

    def bool_(self, d: dict[str, Any], key: str, where: str) -> bool:
        v = self.get(d, key, where)
        if not isinstance(v, bool):
            raise self.fail(f"{where}.{key} must be true or false")
        return v

    def pin(self, d: dict[str, Any], key: str) -> int | str | None:
        v = d.get(key)
        if v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
            return v
        if isinstance(v, str) and v:
            return v
        raise self.fail(f"uart.{key} must be a pin number, a pin name or null")

    def int_list(self, d: dict[str, Any], key: str, where: str) -> list[int]:
        v = self.get(d, key, where)
        if not isinstance(v, list) or not all(
            isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v
        ):
            raise self.fail(f"{where}.{key} must be a list of non-negative integers")
        return v

    def str_list(self, d: dict[str, Any], key: str, where: str = "profile") -> list[str]:
        v = self.get(d, key, where)
        if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
            raise self.fail(f"{where}.{key} must be a list of strings")
        return v


def _pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _version_tuple(text: str) -> tuple[int, int, int] | None:
    parts = text.split(".")
    if len(parts) != 3 or not all(x.isdigit() for x in parts):
        return None
    return int(parts[0]), int(parts[1]), int(parts[2])


def boards_dir() -> Path:
    """Where profiles live: ``$OTALINK_BOARDS``, else ``<repo>/boards``."""
    env = os.environ.get("OTALINK_BOARDS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "boards"


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
