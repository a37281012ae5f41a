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
# Layout of a record, format 2 (little-endian, struct slots.REC, 240 bytes + CRC), padded with
# 0xFF to a multiple of the flash write size (the record's "pitch": 256 bytes for write sizes
# 4..256 bytes, 512 on stm32):
#   magic u16 'OT', fmt u8 = 2, flags u8 (bit0: the trial image passed its self-test / reported
#   healthy in this boot), seq u32,
#   active u8, boot_state u8, last_error u8, tslot u8 (transfer's slot, 255 = none),
#   release_floor u32, trusted_time u32,
#   2 x slot: state u8, kind u8, boots u8, vlen u8, release_counter u32, image_len u32,
#             sha256 32s, version 32s,
#   transfer: compression u8, fault u8, wdt_trips u8, pad 1, wire_len u32, wire_off u32,
#             image_off u32, instr_hash 32s, codec checkpoint 20s,
#   crc32 u32 over all the bytes before it.
# fault: the last fault recorded for the running image (codes E_WATCHDOG .. E_AGENT_FAILED,
# E_PROBE_FAILED; 0 = none), cleared when a trial starts and at CONFIRM. wdt_trips: watchdog
# resets counted during the trial (saturating at 255), cleared likewise. The codec checkpoint is
# reserved for a transfer decoder's resume state (the delta applier's 17-byte checkpoint,
# device/delta.py save()/load(); zeros = none).
# This layout is a stable interface between the immutable loader and every agent version (the
# MCUboot image trailer's role): it is never changed, only new formats added. Format 1 (issues
# 1-10: 220 bytes, the three bytes after compression were pad = 0) stays readable by the loader
# and every agent: it reads as fault 0, wdt_trips 0, no checkpoint. Where its pitch differs
# (write size < 256: unix 4, esp32 16) load() also scans the fmt-1 grid; the first fmt-2 commit
# after such a record goes to the next sector (entered, so erased), leaving the old record in
# force until then.
# The fields live on the Slots object (slots.py: .slot, .active, .tslot, ...); Slots.commit()
# appends a record (it runs on the DATA path: a checkpoint every erase sector). This module is
# the start-up part, loaded by Slots() and dropped again (flash._mod): init() is the Slots
# constructor (geometry, regions, every buffer, the record ring), load() the newest record.
import struct
from binascii import crc32

from micropython import const
from otalink.device.flash import _mod
from otalink.device.slots import REC

try:
    import deflate
except ImportError:  # a port built without it: announce deflate_wbits 0 (no compression)
    deflate = None

_MAGIC = const(0x544F)  # b"OT" little-endian
_FMT = const(2)
_NO_SLOT = const(255)
_BODY = const(240)  # struct.calcsize(REC)
_BODY1 = const(220)  # struct.calcsize(_REC1)
_CK = const(20)  # the codec checkpoint area
# Format 1, read only (its pad bytes after compression read as fault / wdt_trips 0)
_REC1 = const("<HBBIBBBBIIBBBBII32s32sBBBBII32s32sBxxxIII32s")
_CAP_DEFLATE_SEG = const(1)  # protocol/codes.py (checked by tests/protocol/test_wire.py)
_CAP_PATCH = const(2)  # patches applied (device/slotpatch.py)
_PAGE = const(256)  # the default program unit: one NOR page
_STEP = const(128)  # deflate output per pull (slotpatch._STEP: the same)
# flashcfg.DEFAULTS's keys (tests/device_storage/test_consts.py): a geometry with all of them
# needs no merge
_GEOM = const(("size", "erase_size", "write_size", "state_offset", "state_sectors", "slot_size",
               "slot_offsets", "deflate_wbits"))  # fmt: skip


def init(s, bdev, geom, regions, hooks, buffers=True):
    # Every buffer a transfer needs is made by bufs(), once (the ring first, the largest block,
    # while the heap is compact), and reused by every transfer: a BEGIN late in a fragmented
    # heap never needs a new contiguous block. The agent's Slots (buffers=False) holds the state
    # only while idle: its buffers are made at BEGIN and dropped after the transfer (rest()).
    from otalink.device.flash import Region

    g = geom
    for k in _GEOM:
        if k not in g:
            # merged over the defaults (flashcfg.py, loaded for it), and the defaults the caller's
            # geometry lacked are added to it: the agent's next Slots (one per request, one per
            # transfer) then loads no flashcfg.py beside its buffers
            g = _mod("flashcfg").geometry(geom)
            for k in g:
                if k not in geom:
                    geom[k] = g[k]
            break
    es = g["erase_size"]
    ws = g["write_size"]
    # program unit: a multiple of the write size that divides the erase sector; by default one
    # 256-byte NOR page (or the write size if larger): it sits in the heap beside the decoder at
    # the first DATA, where 64k had no 0.75 KiB to spare for a 1 KiB unit. Its cost is calls:
    # 4x the program calls of a 1 KiB unit, measured by slotbench (us_per_kib, docs/device.md),
    # tens of times below what the line takes per KiB.
    dflt = ws if ws > _PAGE else _PAGE
    chunk = g.get("program_size", dflt)
    if chunk % ws or es % chunk:
        raise ValueError("program_size")
    wb = g["deflate_wbits"] if deflate else 0
    if wb and not 9 <= wb <= 15:
        raise ValueError("deflate_wbits")
    # Deflate output steps of 128 bytes, each pulled only while the ring holds `margin` input
    # bytes. No deflate code spends more than 16 bits per output byte (a 15-bit literal; a match
    # gives >= 3 bytes for <= 48 bits), and a dynamic block header is <= ~290 bytes, so a
    # zlib-made stream needs <= 2 * 128 + 290 = 546 input bytes per step: margin 768. A stream
    # crafted to need more (runs of empty blocks) only fails with E_DECOMPRESS (its output is
    # hashed and never activated). Small steps keep the margin, and with it the ring, small
    # (896 bytes with 128-byte steps: 384 less than with 256, and 64k's update had few to spare).
    # (slotwrite.drain derives step and margin from steps[0].)
    s.chunk = chunk
    s.wbits = wb  # DeflateIO(ring, RAW, wbits) decodes with exactly this window
    s.ring = s.cbuf = s.steps = None
    if buffers:
        bufs(s)
    s.es = es
    ss = g["slot_size"]
    s.slot_size = ss
    s.cap_flags = (_CAP_DEFLATE_SEG if wb else 0) | _CAP_PATCH
    # caps(): (window, slot_size, erase_size, write_size, deflate_wbits)
    s.capv = (g.get("window", 16384), ss, es, ws, wb)
    s.trial_limit = g.get("trial_boots", 3)
    if hooks is not None:
        s.hooks = hooks  # (None: the class's default, no entry in the instance's table)
    if regions is None:
        # one device holding the state area and both slots (unix, rp2, stm32); offsets are
        # relative to the board's otalink region of that device ("region": {"offset"})
        # (flashcfg.region_base: the board's "region" section, or "region_offset")
        base = g.get("region")
        base = base.get("offset", 0) if isinstance(base, dict) else g.get("region_offset", 0)
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
    s.per = es // rsize  # records per sector
    s.total = s.per * (reg.size // es)
    if s.per < 1 or reg.size // es < 2:
        raise ValueError("state area too small")
    s.pitch1 = (_BODY1 + 4 + ws - 1) // ws * ws  # where fmt-1 records sit (load)
    s.ck = bytearray(_CK)  # the transfer codec's checkpoint (reserved: zeros)
    # the transfer (none yet)
    s.live = 0  # 1: a transfer is running in this process, 2: it is received (finish() only)
    s.dio = None
    s.sha = None
    s.fill = 0  # deflate output bytes waiting in cbuf
    s.seg_left = -1  # segments: compressed bytes left in the current one, -1 = prefix next
    s.w_cons = 0  # segments: wire bytes taken out of the ring
    s.t_slot = 0
    s.t_len = 0
    s.t_wire = 0
    s.t_img = 0
    load(s)


def bufs(s):
    # The transfer's buffers, made once per Slots (kept until Slots.rest()): the input ring
    # (first: the largest block), the program unit and its deflate output steps. DATA goes
    # through the ring in pieces, so it holds what a drain leaves behind (< one program unit
    # uncompressed, < the margin deflated) plus room to take the next piece (one deflate step;
    # uncompressed, the unit is read out as soon as it is complete).
    if s.cbuf is not None:
        return
    from micropython import RingIO

    chunk = s.chunk
    step = _STEP if chunk % _STEP == 0 else chunk
    margin = 2 * step + 512
    s.ring = RingIO((chunk if chunk > margin else margin) + step if s.wbits else chunk)
    cbuf = bytearray(chunk)
    s.cbuf = cbuf
    # deflate output steps: views of cbuf made once (slicing a memoryview allocates)
    s.steps = tuple(memoryview(cbuf)[i : i + step] for i in range(0, chunk, step))


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
    s.fault = 0
    s.wdt_trips = 0
    s.wire_len = 0
    s.wire_off = 0
    s.image_off = 0
    s.instr_hash = bytes(32)
    for i in range(_CK):
        s.ck[i] = 0


def _valid(buf, body):
    # a record of `body` bytes followed by its CRC-32 at the start of buf
    mv = memoryview(buf)[:body]
    return crc32(mv) == struct.unpack_from(b"<I", buf, body)[0]


def _scan(s, pitch, only1):
    # -> (seq, position, fmt) of the valid record with the highest seq on the grid of `pitch`
    # (only1: fmt-1 records only, on the old grid)
    reg = s.sreg
    buf = memoryview(s.rbuf)[:pitch]
    per = reg.es // pitch
    best = (-1, -1, 0)
    for p in range(per * (reg.size // reg.es)):
        reg.read(p // per * reg.es + p % per * pitch, buf)
        if buf[0] != _MAGIC & 0xFF or buf[1] != _MAGIC >> 8:
            continue
        f = buf[2]
        if (f == 2 and not only1 and _valid(buf, _BODY)) or (f == 1 and _valid(buf, _BODY1)):
            q = struct.unpack_from(b"<I", buf, 4)[0]
            if q > best[0]:
                best = (q, p, f)
    return best


def load(s):
    # Scan the ring (and, where the pitch of fmt 1 differs, its grid too); adopt the valid record
    # with the highest seq. Returns True if one was found (False on a blank or unreadable state
    # area: factory state).
    reset(s)
    reg = s.sreg
    rsize = len(s.rbuf)
    best = _scan(s, rsize, False)
    p1 = s.pitch1
    old = None
    if p1 != rsize:
        old = _scan(s, p1, True)
        if old[0] > best[0]:
            best = old
        else:
            old = None
    s.pos = best[1]
    if best[1] < 0:
        return False
    if old is not None:
        # a fmt-1 record on the old grid: read it there; the next commit starts the next sector
        # (whose entry erases it) so no new-grid position overlaps the record in force
        per1 = reg.es // p1
        sector = best[1] // per1
        buf = memoryview(s.rbuf)[:p1]
        reg.read(sector * reg.es + best[1] % per1 * p1, buf)
        s.pos = sector * s.per + s.per - 1
    else:
        reg.read(best[1] // s.per * reg.es + best[1] % s.per * rsize, s.rbuf)
    buf = s.rbuf
    if best[2] == 1:
        v = struct.unpack_from(_REC1, buf, 0)
    else:
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
    s.comp = v[i]
    if best[2] == 1:
        s.wire_len, s.wire_off, s.image_off, s.instr_hash = v[i + 1 : i + 5]
    else:
        s.fault = v[i + 1]
        s.wdt_trips = v[i + 2]
        s.wire_len, s.wire_off, s.image_off, s.instr_hash = v[i + 3 : i + 7]
        s.ck[:] = v[i + 7]
    return True
