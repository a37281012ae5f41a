# A/B slots of the device agent: transfer into the inactive slot, read-back verification,
# activation, trial boot, confirm and rollback, over the block-device protocol (flash.py) with
# every decision persisted power-safely (state records: store.py). docs/device.md describes the
# states, the boot decision table (decide.BOOT_TABLE is that table, as data) and the power-safety
# argument.
#
# API used by the session (names are stable; changes get noted here first):
#   Slots(bdev, geom, regions=None, hooks=None)
#   .active .release_floor .trusted_time          note_time(t)
#   report() -> (active, boot_state, last_error, slots_list, trial_boots)
#   transfer() -> (phase, wire_offset, wire_len, image_len)
#   begin(instr_hash, image_len, sha256, wire_len, compression, version, release_counter, kind,
#         progress=None) -> wire offset to send from (0 = new, >0 = resume)
#   write(offset, mv) -> next expected wire offset     (zero heap allocation in steady state)
#   finish() -> code        activate() / confirm() / revert() / abort() -> code
#   boot() -> (slot, action, reason)       trial_passed()      trial_failed(code)
#   caps() -> (window, slot_size, erase_size, write_size, deflate_wbits)
#   .cap_flags   INFO caps flags: CAP_DEFLATE_SEG (1) = compression COMP_DEFLATE_SEG (2) accepted
#   .slot[i]     slot i as persisted: [state, kind, boots, release_counter, image_len, sha256,
#                version bytes];  .regions[i]  its flash Region;  .cbuf  the program unit buffer
# Errors that stop an operation are raised as DeviceError(code, detail) from device/errors.py;
# every operation takes positional arguments only.
# Changes: begin() with another instruction while a transfer is live in this process replaces
# that transfer (was E_BUSY; the session guards its active transfer session itself).
# Added: compression COMP_DEFLATE_SEG (resumable deflate segments) and .cap_flags.
# Changed for the heap: .store is gone (its fields are on Slots: .slot, .tslot, ...), .geom is
# not kept (boot.py reads cfg.geom), write() takes DATA of any length (geometry max_data is not
# used), bytes after the end of a plain deflate stream that overflow the ring are E_DECOMPRESS
# (was E_TOO_LARGE), and the module exports no COMP_DEFLATE_SEG / CAP_DEFLATE_SEG names.
# Heap (the unix port keeps loaded code and every interned name in the GC heap): this module holds
# only the DATA path (write) and the state record's commit. Everything else is loaded per call and
# dropped again: the constructor's work in store.py (with flashcfg.py), boot() and the trial
# reports in decide.py, the other operations in slotops.py, both reached through __getattr__
# below (one small method instead of a delegating method per operation). The persisted fields
# live on the Slots object itself (was a separate Store: .store.slot is now .slot). The input ring
# is margin + one deflate step long (was max_data + margin): DATA goes through it in pieces.
import struct
from binascii import crc32

try:
    import deflate
except ImportError:  # a port built without it: announce deflate_wbits 0 (no compression)
    deflate = None
from micropython import const
from otalink.device.errors import DeviceError
from otalink.device.flash import _mod

# protocol/codes.py values used here, as private consts (folded by the compiler: codes.py's ~100
# names would stay in the heap; tests/protocol/test_wire.py checks each copy)
_COMP_NONE = const(0)
_COMP_DEFLATE_SEG = const(2)
_E_BAD_STATE = const(12)
_E_BAD_OFFSET = const(21)
_E_WIRE_LENGTH = const(22)
_E_LENGTH_MISMATCH = const(38)
_E_FLASH = const(40)
_E_DECOMPRESS = const(41)

# The state record (layout and power-safety argument: store.py). REC is shared with store.py; one
# literal (a concatenation would be built at import and intern its short pieces).
REC = "<HBBIBBBBIIBBBBII32s32sBBBBII32s32sBxxxIII32s"
_MAGIC = const(0x544F)  # b"OT" little-endian
_FMT = const(1)
_BODY = const(220)  # struct.calcsize(REC), checked by store.init

# The operations Slots.__getattr__ finds: the start-up ones in decide.py, the rest in slotops.py
# (tests/device_storage/test_consts.py checks both lists against the modules' public functions)
_START = ("boot", "trial_passed", "trial_failed")
_OPS = ("caps", "note_time", "report", "transfer", "begin", "finish", "activate", "confirm",
        "revert", "abort", "park")  # fmt: skip


def _op(s, name, a):
    return getattr(_mod("decide" if name in _START else "slotops"), name)(s, *a)


class Slots:
    def __init__(self, bdev, geom, regions=None, hooks=None):
        _mod("store").init(self, bdev, geom, regions, hooks)
        # slotops.py is loaded per call from now on: load it once here so its names are interned
        # while the heap is compact (a qstr pool first made later would sit among the transfer's
        # buffers for good); decide.py comes with boot(), at start-up too.
        _mod("slotops")

    def __getattr__(self, name):
        # A name not set on the object nor defined here: an operation of _START / _OPS, loaded
        # for the call and dropped again. The callable holds the name, not the module, so a
        # stale stack slot of the caller never keeps that code in the heap.
        if name not in _OPS and name not in _START:
            raise AttributeError(name)
        return lambda *a: _op(self, name, a)

    # ---- the DATA path ------------------------------------------------------------------
    def write(self, offset, mv):
        # Hot path, no allocation in steady state: the payload goes through the ring in pieces
        # (ring.write(mv, start, n) takes a view's tail without slicing it), then is drained:
        # decompress into the preallocated program unit, sha256 update, program, a checkpoint
        # record every erase sector.
        if self.live != 1:
            raise DeviceError(_E_BAD_STATE, 0)
        if offset != self.t_wire:
            raise DeviceError(_E_BAD_OFFSET, self.t_wire)
        n = len(mv)
        end = offset + n
        if end > self.wire_len:
            raise DeviceError(_E_WIRE_LENGTH, self.wire_len)
        ring = self.ring
        w = 0
        try:
            while w < n:
                if w:
                    self._drain(False)  # ring full: make room
                k = ring.write(mv, w, n - w)
                if not k:
                    # the decoder takes no more input: bytes after the deflate stream's end
                    raise DeviceError(_E_DECOMPRESS, self.t_img)
                w += k
            self.t_wire = end
            self._drain(end == self.wire_len)
        except OSError as e:
            raise DeviceError(_E_FLASH, e.errno if hasattr(e, "errno") else 0)
        return end

    def _drain(self, final):
        # Take what the ring holds: whole program units (uncompressed), or deflate output in
        # steps (quarters of the program unit, filled in place) while the ring holds the margin
        # (all of it when final): the decompressor must never run dry mid-symbol (DeflateIO
        # raises EOFError and its state is lost; store.init sizes both). Deflate segments: a
        # length prefix, then one complete raw-deflate stream per segment (a fresh DeflateIO:
        # its state cannot be reused) pulled while the ring holds the margin or the rest of the
        # segment; the decoder stops at the stream's final block, so what it consumed is exact
        # (ring.any() before - after). A segment ending on an erase-sector boundary is a durable
        # checkpoint: (wire offset, image offset).
        ring = self.ring
        chunk = self.chunk
        comp = self.comp
        if comp == _COMP_NONE:
            cbuf = self.cbuf
            while ring.any() >= chunk:
                ring.readinto(cbuf)
                self._put(chunk)
            k = ring.any()
            if final and k:
                ring.readinto(cbuf, k)
                self._put(k)
            return
        seg = comp == _COMP_DEFLATE_SEG
        dio = self.dio
        steps = self.steps
        step = len(steps[0])
        margin = 2 * step + 512  # store.init explains the margin
        fill = self.fill
        left = self.seg_left  # segments: compressed bytes left in this one, -1 = prefix next
        used = self.w_cons  # segments: wire bytes taken out of the ring
        try:
            while True:
                avail = ring.any()
                if not seg:
                    if avail < margin and not final:
                        break
                elif left < 0:
                    if avail < 4:
                        break
                    p = self.rbuf  # (free between commits: commit() probes into it first)
                    ring.readinto(p, 4)
                    left = p[0] | p[1] << 8 | p[2] << 16 | p[3] << 24
                    used += 4
                    if left == 0 or used + left > self.wire_len:
                        raise DeviceError(_E_DECOMPRESS, self.t_img)
                    self.dio = dio = None  # the previous segment's decoder goes first
                    self.dio = dio = deflate.DeflateIO(ring, deflate.RAW, self.wbits)
                    continue
                elif avail < margin and avail < left:
                    break  # more input needed (final: the wire is short; finish() reports)
                try:
                    k = dio.readinto(steps[fill // step])
                except (OSError, EOFError, ValueError):
                    raise DeviceError(_E_DECOMPRESS, self.t_img)
                fill += k
                if fill == chunk:
                    self._put(chunk)
                    fill = 0
                if seg:
                    avail -= ring.any()
                    left -= avail
                    used += avail
                    if left < 0:
                        raise DeviceError(_E_DECOMPRESS, self.t_img)
                if k < step:  # the stream ended
                    if not seg:
                        break
                    if left:
                        raise DeviceError(_E_DECOMPRESS, self.t_img)
                    self.dio = dio = None
                    left = -1
                    img = self.t_img
                    if fill:
                        if used != self.wire_len:  # only the last segment may end here
                            raise DeviceError(_E_DECOMPRESS, img)
                    elif img % self.es == 0 and img < self.t_len:
                        self.wire_off = used
                        self.image_off = img
                        self.commit()
        finally:
            self.fill = fill
            self.seg_left = left
            self.w_cons = used
        if final and fill:
            self._put(fill)
            self.fill = 0

    def _put(self, k):
        # program one unit (k valid bytes, the rest padded with 0xFF) at the image offset
        img = self.t_img
        if img + k > self.t_len:
            raise DeviceError(_E_LENGTH_MISMATCH, img + k)
        cbuf = self.cbuf
        if k < self.chunk:
            for i in range(k, self.chunk):  # the tail only: once per transfer
                cbuf[i] = 0xFF
            self.sha.update(memoryview(cbuf)[:k])
        else:
            self.sha.update(cbuf)
        self.regions[self.t_slot].program(img, cbuf)
        img += k
        self.t_img = img
        if img % self.es == 0 and self.comp == _COMP_NONE and img < self.t_len:
            # durable checkpoint at every erase-sector boundary (uncompressed: wire == image)
            self.wire_off = img
            self.image_off = img
            self.commit()

    # ---- the state record -----------------------------------------------------------------
    def commit(self):
        # Append the persisted fields as a new record, atomically (store.py says why): at the
        # next position after the newest record that reads blank; entering a sector erases it
        # first (the newest record is in another sector: nothing is lost); a position that is
        # not blank (a torn record, erase garbage) is skipped, never programmed. The position is
        # probed into the record buffer, so its padding is 0xFF when the record is packed.
        reg = self.sreg
        buf = self.rbuf
        per = self.per
        p = self.pos
        while True:
            p = (p + 1) % self.total
            addr = p // per * reg.es + p % per * len(buf)
            if p % per == 0:
                reg.erase(p // per)
            reg.read(addr, buf)
            if buf == self.rff:
                break
        self.seq += 1
        a, b = self.slot
        struct.pack_into(
            REC, buf, 0, _MAGIC, _FMT, self.flags, self.seq,
            self.active, self.boot_state, self.last_error, self.tslot,
            self.release_floor, self.trusted_time,
            a[0], a[1], a[2], len(a[6]), a[3], a[4], a[5], a[6],
            b[0], b[1], b[2], len(b[6]), b[3], b[4], b[5], b[6],
            self.comp, self.wire_len, self.wire_off, self.image_off, self.instr_hash,
        )  # fmt: skip
        struct.pack_into("<I", buf, _BODY, crc32(self.rbody))
        reg.program(addr, buf)
        self.pos = p
