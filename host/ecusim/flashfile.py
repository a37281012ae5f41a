"""Read an emulated flash file from CPython: raw bytes, slot contents, the persisted state.

The state decoder is an independent reading of the record format of device/store.py (tests use
it as an oracle next to the agent's own view).
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from dataclasses import dataclass
from typing import Any

_REC = struct.Struct("<HBBIBBBBII" + "BBBBII32s32s" * 2 + "BxxxIII32s")
_MAGIC = 0x544F
_NO_SLOT = 255


@dataclass(frozen=True)
class SlotState:
    """One slot as persisted."""

    state: int
    kind: int
    boots: int
    release_counter: int
    image_len: int
    sha256: bytes
    version: str


@dataclass(frozen=True)
class DeviceState:
    """The newest valid state record."""

    seq: int
    flags: int
    active: int
    boot_state: int
    last_error: int
    release_floor: int
    trusted_time: int
    slots: tuple[SlotState, SlotState]
    transfer_slot: int | None
    wire_len: int
    wire_offset: int
    image_offset: int


class FlashFile:
    """A flash file plus its geometry (the flat dict of device/flash.py DEFAULTS keys)."""

    def __init__(self, path: str | os.PathLike[str], geom: dict[str, Any]) -> None:
        self.path = os.fspath(path)
        self.geom = geom

    def base(self) -> int:
        """Offset of the otalink region in the device (board "region" / "region_offset")."""
        r = self.geom.get("region")
        if isinstance(r, dict):
            return int(r.get("offset", 0))
        return int(self.geom.get("region_offset", 0))

    def read(self, addr: int, n: int) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(addr)
            return f.read(n)

    def slot_bytes(self, slot: int, n: int) -> bytes:
        return self.read(self.base() + int(self.geom["slot_offsets"][slot]), n)

    def slot_sha256(self, slot: int, n: int) -> bytes:
        return hashlib.sha256(self.slot_bytes(slot, n)).digest()

    def record_size(self) -> int:
        ws = int(self.geom["write_size"])
        return (_REC.size + 4 + ws - 1) // ws * ws

    def state(self) -> DeviceState | None:
        """Decode the newest record with a valid CRC (None on a blank state area)."""
        es = int(self.geom["erase_size"])
        rs = self.record_size()
        start = self.base() + int(self.geom["state_offset"])
        area = self.read(start, int(self.geom["state_sectors"]) * es)
        best: tuple[int, bytes] | None = None
        for sector in range(len(area) // es):
            for i in range(es // rs):
                a = sector * es + i * rs
                rec = area[a : a + _REC.size + 4]
                if len(rec) < _REC.size + 4:
                    continue
                body = rec[: _REC.size]
                (crc,) = struct.unpack_from("<I", rec, _REC.size)
                if body[:3] != struct.pack("<HB", _MAGIC, 1) or zlib.crc32(body) != crc:
                    continue
                (seq,) = struct.unpack_from("<I", body, 4)
                if best is None or seq > best[0]:
                    best = (seq, body)
        if best is None:
            return None
        v = _REC.unpack(best[1])
        slots = []
        for i in (10, 18):
            st, kind, boots, vlen, rc, ln, sha, ver = v[i : i + 8]
            slots.append(SlotState(st, kind, boots, rc, ln, sha, ver[:vlen].decode()))
        return DeviceState(
            seq=v[3],
            flags=v[2],
            active=v[4],
            boot_state=v[5],
            last_error=v[6],
            release_floor=v[8],
            trusted_time=v[9],
            slots=(slots[0], slots[1]),
            transfer_slot=None if v[7] == _NO_SLOT else v[7],
            wire_len=v[27],
            wire_offset=v[28],
            image_offset=v[29],
        )
