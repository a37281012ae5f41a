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
# Layout of a record (little-endian, struct slots.REC), padded with 0xFF to a multiple of the
# flash write size:
#   magic u16 'OT', fmt u8, flags u8 (bit0: trial self-test passed), seq u32,
#   active u8, boot_state u8, last_error u8, tslot u8 (transfer's slot, 255 = none),
#   release_floor u32, trusted_time u32,
#   2 x slot: state u8, kind u8, boots u8, vlen u8, release_counter u32, image_len u32,
#             sha256 32s, version 32s,
#   transfer: compression u8, pad 3, wire_len u32, wire_off u32, image_off u32, instr_hash 32s,
#   crc32 u32 over all the bytes before it.
# The fields live on the Slots object (slots.py: .slot, .active, .tslot, ...); Slots.commit()
# appends a record (it runs on the DATA path: a checkpoint every erase sector). This module is
# the start-up part, loaded by Slots() and dropped again (flash._mod): init() is the Slots
# constructor (geometry, regions, every buffer, the record ring), load() the newest record.
import struct
from binascii import crc32

from micropython import const
from otalink.device.flash import _mod
from otalink.device.slots import REC

_MAGIC = const(0x544F)  # b"OT" little-endian
_FMT = const(1)
_NO_SLOT = const(255)
_BODY = const(220)  # struct.calcsize(REC)
_CAP_DEFLATE_SEG = const(1)  # protocol/codes.py (checked by tests/protocol/test_wire.py)
_STEP = const(256)


def init(s, bdev, geom, regions, hooks):
    # Every buffer a transfer needs is made here, once (the ring first, the largest block, while
    # the heap is compact), and reused by every transfer: a BEGIN late in a fragmented heap never
    # needs a new contiguous block.
    from micropython import RingIO
    from otalink.device.flash import Region
    from otalink.device.slots import deflate

    flashcfg = _mod("flashcfg")  # start-up only (see flash.py)
    g = flashcfg.geometry(geom)
    es = g["erase_size"]
    ws = g["write_size"]
    # program unit: a multiple of the write size that divides the erase sector; 1 KiB by
    # default (4x fewer calls than one 256-byte page per program, measured by slotbench)
    dflt = 1024 if es % 1024 == 0 and 1024 % ws == 0 else max(ws, 256)
    chunk = g.get("program_size", dflt)
    if chunk % ws or es % chunk:
        raise ValueError("program_size")
    wb = g["deflate_wbits"] if deflate else 0
    if wb and not 9 <= wb <= 15:
        raise ValueError("deflate_wbits")
    # Deflate output steps of 256 bytes, each pulled only while the ring holds `margin` input
    # bytes. No deflate code spends more than 16 bits per output byte (a 15-bit literal; a match
    # gives >= 3 bytes for <= 48 bits), and a dynamic block header is <= ~290 bytes, so a
    # zlib-made stream needs <= 2 * 256 + 290 = 802 input bytes per step: margin 1024. A stream
    # crafted to need more (runs of empty blocks) only fails with E_DECOMPRESS (its output is
    # hashed and never activated). Small steps keep the margin, and with it the ring, small.
    # (slots._drain derives step and margin from steps[0].)
    step = _STEP if chunk % _STEP == 0 else chunk
    margin = 2 * step + 512
    # The input ring: DATA goes through it in pieces, so it holds what a drain leaves behind
    # (< one program unit uncompressed, < the margin deflated) plus room to take the next piece
    # (one deflate step; uncompressed, the unit is read out as soon as it is complete).
    s.ring = RingIO((chunk if chunk > margin else margin) + step if wb else chunk)
    cbuf = bytearray(chunk)
    s.cbuf = cbuf
    # deflate output steps: views of cbuf made once (slicing a memoryview allocates)
    s.steps = tuple(memoryview(cbuf)[i : i + step] for i in range(0, chunk, step))
    s.chunk = chunk
    s.es = es
    ss = g["slot_size"]
    s.slot_size = ss
    s.wbits = wb  # DeflateIO(ring, RAW, wbits) decodes with exactly this window
    s.cap_flags = _CAP_DEFLATE_SEG if wb else 0
    # caps(): (window, slot_size, erase_size, write_size, deflate_wbits)
    s.capv = (g.get("window", 16384), ss, es, ws, wb)
    s.trial_limit = g.get("trial_boots", 3)
    s.hooks = hooks
    if regions is None:
        # one device holding the state area and both slots (unix, rp2, stm32); offsets are
        # relative to the board's otalink region of that device ("region": {"offset"})
        base = flashcfg.region_base(g)
        offs = g["slot_offsets"]
        regions = (
            Region(bdev, base + g["state_offset"], g["state_sectors"] * es, es),
            Region(bdev, base + offs[0], ss, es),
            Region(bdev, base + offs[1], ss, es),
        )
    s.regions = (regions[1], regions[2])
    # the record ring (struct.calcsize(REC) == _BODY: tests/device_storage/test_consts.py)
    reg = regions[0]
    s.sreg = reg
    rsize = (_BODY + 4 + ws - 1) // ws * ws  # a record, padded to the write size
    s.rbuf = bytearray(rsize)
    s.rbody = memoryview(s.rbuf)[:_BODY]
    s.rff = b"\xff" * rsize  # a blank position, to compare with
    s.per = es // rsize  # records per sector
    s.total = s.per * (reg.size // es)
    if s.per < 1 or reg.size // es < 2:
        raise ValueError("state area too small")
    # the transfer (none yet)
    s.live = 0  # 1: a transfer is running in this process, 2: it is received (finish() only)
    s.dio = None
    s.sha = None
    s.confirmed_now = False
    s.fill = 0  # deflate output bytes waiting in cbuf
    s.seg_left = -1  # segments: compressed bytes left in the current one, -1 = prefix next
    s.w_cons = 0  # segments: wire bytes taken out of the ring
    s.t_slot = 0
    s.t_len = 0
    s.t_wire = 0
    s.t_img = 0
    load(s)


def reset(s):
    # factory state: both slots empty, slot 0 active
    s.seq = 0
    s.flags = 0
    s.active = 0
    s.boot_state = 0
    s.last_error = 0
    s.release_floor = 0
    s.trusted_time = 0
    # per slot: [state, kind, boots, release_counter, image_len, sha256, version bytes]
    s.slot = [[0, 0, 0, 0, 0, bytes(32), b""], [0, 0, 0, 0, 0, bytes(32), b""]]
    s.tslot = _NO_SLOT
    s.comp = 0
    s.wire_len = 0
    s.wire_off = 0
    s.image_off = 0
    s.instr_hash = bytes(32)


def load(s):
    # Scan the whole ring; adopt the valid record with the highest seq. Returns True if one was
    # found (False on a blank or unreadable state area: factory state).
    reset(s)
    reg = s.sreg
    buf = s.rbuf
    per = s.per
    best = -1
    bseq = -1
    for p in range(s.total):
        reg.read(p // per * reg.es + p % per * len(buf), buf)
        if buf[0] == _MAGIC & 0xFF and buf[1] == _MAGIC >> 8 and buf[2] == _FMT:
            if crc32(s.rbody) == struct.unpack_from("<I", buf, _BODY)[0]:
                q = struct.unpack_from("<I", buf, 4)[0]
                if q > bseq:
                    bseq = q
                    best = p
    s.pos = best
    if best < 0:
        return False
    reg.read(best // per * reg.es + best % per * len(buf), buf)
    v = struct.unpack_from(REC, buf, 0)
    s.flags = v[2]
    s.seq = v[3]
    s.active = v[4]
    s.boot_state = v[5]
    s.last_error = v[6]
    s.tslot = v[7]
    s.release_floor = v[8]
    s.trusted_time = v[9]
    i = 10
    for n in (0, 1):
        st, kind, boots, vlen, rc, ln, sha, ver = v[i : i + 8]
        s.slot[n] = [st, kind, boots, rc, ln, sha, ver[:vlen]]
        i += 8
    s.comp, s.wire_len, s.wire_off, s.image_off, s.instr_hash = v[i : i + 5]
    return True
