# Power-safe persisted state of the device: one fixed-size snapshot record holding everything
# (both slots, the transfer, release floor, trusted time, boot bookkeeping), appended to a ring of
# `state_sectors` erase sectors. Why it survives a power cut at any flash operation:
# - a record is only ever programmed into erased (all 0xFF) space: never program over programmed
#   bytes, so no operation can damage an older record;
# - each record carries a sequence number and a CRC-32; load() takes the valid record with the
#   highest sequence number, so a torn (partially programmed) record is simply not seen and the
#   previous one stays in force - a commit is atomic;
# - a sector is erased only when the writer moves into it, and the newest valid record is then
#   always in another sector; a torn erase leaves garbage that fails the CRC check;
# - a position that is not blank (a torn record, erase garbage) is skipped, never programmed.
# Layout of a record (little-endian, struct REC below), padded with 0xFF to a multiple of the
# flash write size:
#   magic u16 'OT', fmt u8, flags u8 (bit0: trial self-test passed), seq u32,
#   active u8, boot_state u8, last_error u8, tslot u8 (transfer's slot, 255 = none),
#   release_floor u32, trusted_time u32,
#   2 x slot: state u8, kind u8, boots u8, vlen u8, release_counter u32, image_len u32,
#             sha256 32s, version 32s,
#   transfer: compression u8, pad 3, wire_len u32, wire_off u32, image_off u32, instr_hash 32s,
#   crc32 u32 over all the bytes before it.
import struct
from binascii import crc32

from micropython import const

MAGIC = const(0x544F)  # b"OT" little-endian
FMT = const(1)
NO_SLOT = const(255)
FLAG_TRIAL_OK = const(1)

REC = "<HBBIBBBBII" + "BBBBII32s32s" + "BBBBII32s32s" + "BxxxIII32s"
_BODY = const(220)  # struct.calcsize(REC); checked in __init__


class Store:
    def __init__(self, region, write_size):
        if struct.calcsize(REC) != _BODY:
            raise ValueError("REC size")
        self.region = region
        n = _BODY + 4
        self.rsize = (n + write_size - 1) // write_size * write_size
        self.per = region.es // self.rsize  # records per sector
        self.nsect = region.sectors()
        if self.per < 1 or self.nsect < 2:
            raise ValueError("state area too small")
        self.buf = bytearray(b"\xff" * self.rsize)
        self._body = memoryview(self.buf)[:_BODY]
        self._ff = b"\xff" * self.rsize
        self._probe = bytearray(self.rsize)
        self.pos = -1  # ring position of the newest valid record, -1 = none
        self.reset()

    def reset(self):
        # factory state: both slots empty, slot 0 active
        self.seq = 0
        self.flags = 0
        self.active = 0
        self.boot_state = 0
        self.last_error = 0
        self.release_floor = 0
        self.trusted_time = 0
        # per slot: [state, kind, boots, release_counter, image_len, sha256, version bytes]
        self.slot = [[0, 0, 0, 0, 0, bytes(32), b""], [0, 0, 0, 0, 0, bytes(32), b""]]
        self.tslot = NO_SLOT
        self.comp = 0
        self.wire_len = 0
        self.wire_off = 0
        self.image_off = 0
        self.instr_hash = bytes(32)

    # ---- load ---------------------------------------------------------------------------
    def load(self):
        # Scan the whole ring; adopt the valid record with the highest seq. Returns True if one
        # was found (False on a blank or unreadable state area: factory state).
        best = -1
        bseq = -1
        buf = self.buf
        total = self.nsect * self.per
        for p in range(total):
            self.region.read(self._addr(p), buf)
            if self._valid():
                s = struct.unpack_from("<I", buf, 4)[0]
                if s > bseq:
                    bseq = s
                    best = p
        self.pos = best
        if best < 0:
            self.reset()
            return False
        self.region.read(self._addr(best), buf)
        self._unpack()
        return True

    def _addr(self, p):
        return (p // self.per) * self.region.es + (p % self.per) * self.rsize

    def _valid(self):
        b = self.buf
        if b[0] != (MAGIC & 0xFF) or b[1] != (MAGIC >> 8) or b[2] != FMT:
            return False
        return crc32(self._body) == struct.unpack_from("<I", b, _BODY)[0]

    def _unpack(self):
        v = struct.unpack_from(REC, self.buf, 0)
        self.flags = v[2]
        self.seq = v[3]
        self.active = v[4]
        self.boot_state = v[5]
        self.last_error = v[6]
        self.tslot = v[7]
        self.release_floor = v[8]
        self.trusted_time = v[9]
        i = 10
        for s in (0, 1):
            st, kind, boots, vlen, rc, ln, sha, ver = v[i : i + 8]
            self.slot[s] = [st, kind, boots, rc, ln, sha, ver[:vlen]]
            i += 8
        self.comp, self.wire_len, self.wire_off, self.image_off, self.instr_hash = v[i : i + 5]

    # ---- commit -------------------------------------------------------------------------
    def commit(self):
        # Append the current fields as a new record (atomic: see the header comment).
        self.seq += 1
        a = self.slot[0]
        b = self.slot[1]
        buf = self.buf
        struct.pack_into(
            REC, buf, 0, MAGIC, FMT, self.flags, self.seq,
            self.active, self.boot_state, self.last_error, self.tslot,
            self.release_floor, self.trusted_time,
            a[0], a[1], a[2], len(a[6]), a[3], a[4], a[5], a[6],
            b[0], b[1], b[2], len(b[6]), b[3], b[4], b[5], b[6],
            self.comp, self.wire_len, self.wire_off, self.image_off, self.instr_hash,
        )  # fmt: skip
        struct.pack_into("<I", buf, _BODY, crc32(self._body))
        total = self.nsect * self.per
        p = self.pos + 1
        reg = self.region
        probe = self._probe
        while True:
            p %= total
            addr = self._addr(p)
            if p % self.per == 0:
                # entering a sector: the newest record is elsewhere, erasing it loses nothing
                reg.erase(p // self.per)
                break
            reg.read(addr, probe)
            if probe == self._ff:
                break
            p += 1  # torn record or garbage: skip, never program over it
        reg.program(addr, buf)
        self.pos = p
