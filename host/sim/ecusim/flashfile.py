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

from otalink.host.sim.ecusim.config import FlashGeometry

# fmt 2 (issue 11: fault, wdt_trips, a 20-byte codec checkpoint); fmt 1 is still read
_REC = struct.Struct("<HBBIBBBBII" + "BBBBII32s32s" * 2 + "BBBxIII32s20s")
_REC1 = struct.Struct("<HBBIBBBBII" + "BBBBII32s32s" * 2 + "BxxxIII32s")
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
    fmt: int = 2
    fault: int = 0
    wdt_trips: int = 0
    checkpoint: bytes = bytes(20)


class FlashFile:
    """A flash file plus its geometry (the flat dict of device/flash.py DEFAULTS keys)."""

    def __init__(self, path: str | os.PathLike[str], geom: FlashGeometry) -> None:
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

    def record_size(self, fmt: int = 2) -> int:
        """The pitch of a record of format ``fmt`` (its size + CRC, padded to the write size)."""
        ws = int(self.geom["write_size"])
        body = (_REC if fmt == 2 else _REC1).size
        return (body + 4 + ws - 1) // ws * ws

    def state(self) -> DeviceState | None:
        """Decode the newest record with a valid CRC (None on a blank state area): fmt 2 on its
        grid, fmt 1 on its own (the same grid when the pitches agree)."""
        es = int(self.geom["erase_size"])
        start = self.base() + int(self.geom["state_offset"])
        area = self.read(start, int(self.geom["state_sectors"]) * es)
        best: tuple[int, int, bytes] | None = None
        for fmt, rec in ((2, _REC), (1, _REC1)):
            rs = self.record_size(fmt)
            for sector in range(len(area) // es):
                for i in range(es // rs):
                    a = sector * es + i * rs
                    raw = area[a : a + rec.size + 4]
                    if len(raw) < rec.size + 4:
                        continue
                    body = raw[: rec.size]
                    (crc,) = struct.unpack_from("<I", raw, rec.size)
                    if body[:3] != struct.pack("<HB", _MAGIC, fmt) or zlib.crc32(body) != crc:
                        continue
                    (seq,) = struct.unpack_from("<I", body, 4)
                    if best is None or seq > best[0]:
                        best = (seq, fmt, body)
        if best is None:
            return None
        fmt = best[1]
        v = (_REC if fmt == 2 else _REC1).unpack(best[2])
        slots = []
        for i in (10, 18):
            st, kind, boots, vlen, rc, ln, sha, ver = v[i : i + 8]
            slots.append(SlotState(st, kind, boots, rc, ln, sha, ver[:vlen].decode()))
        if fmt == 2:
            fault, trips = v[27], v[28]
            wire_len, wire_off, image_off, ck = v[29], v[30], v[31], v[33]
        else:
            fault, trips = 0, 0
            wire_len, wire_off, image_off, ck = v[27], v[28], v[29], bytes(20)
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
            wire_len=wire_len,
            wire_offset=wire_off,
            image_offset=image_off,
            fmt=fmt,
            fault=fault,
            wdt_trips=trips,
            checkpoint=bytes(ck),
        )
