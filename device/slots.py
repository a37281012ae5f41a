# A/B slots of the device agent: transfer into the inactive slot, read-back verification,
# activation, trial boot, confirm and rollback, over the block-device protocol (flash.py) with
# every decision persisted power-safely (store.py). docs/device.md describes the states, the boot
# decision table (decide.BOOT_TABLE is that table, as data) and the power-safety argument.
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
# Errors that stop an operation are raised as DeviceError(code, detail) from device/errors.py.
# Changes: begin() with another instruction while a transfer is live in this process replaces
# that transfer (was E_BUSY; the session guards its active transfer session itself).
# Added: compression COMP_DEFLATE_SEG (resumable deflate segments) and .cap_flags; the input ring
# is allocated in __init__ (not at the first begin); boot() and the after-reboot resume run in
# decide.py (loaded per call, dropped after); geometry defaults moved to flashcfg.py.
import hashlib

try:
    import deflate
except ImportError:  # a port built without it: announce deflate_wbits 0 (no compression)
    deflate = None
from micropython import RingIO, const
from otalink.device.errors import DeviceError
from otalink.device.flash import Region
from otalink.device.store import FLAG_TRIAL_OK, NO_SLOT, Store
from otalink.protocol import codes as C

# Deflate output is pulled in steps of _STEP bytes (quarters of the program unit, filled in place)
# and only while the ring holds at least `margin` input bytes: the decompressor must never run dry
# mid-symbol (DeflateIO raises EOFError and its state is lost). No deflate code spends more than
# 16 bits per output byte (a 15-bit literal; a match gives >= 3 bytes for <= 48 bits), and a
# dynamic block header is <= ~290 bytes, so a zlib-made stream needs <= 2 * 256 + 290 = 802 input
# bytes per 256-byte step: margin 1024. A stream crafted to need more (runs of empty blocks) only
# fails with E_DECOMPRESS (its output is hashed and never activated). Small steps keep the margin,
# and with it the ring, 1 KiB smaller than pulling a whole program unit at once.
_STEP = const(256)
# Compression code of resumable deflate segments (docs/device.md "Deflate segments"): the wire is
# a sequence of [u32 LE compressed length][a complete raw-deflate stream], each decoding to a
# multiple of 4 KiB (the last: the rest). To go into protocol/codes.py as COMP_DEFLATE_SEG.
COMP_DEFLATE_SEG = const(2)
# Slots.cap_flags bit: COMP_DEFLATE_SEG accepted (the session puts it into INFO caps flags)
CAP_DEFLATE_SEG = const(1)


def _drop(name):
    # forget a lazily imported helper module so the GC can free its code (the unix port and
    # .mpy files on a filesystem keep loaded bytecode in the heap; frozen code costs nothing)
    import sys

    sys.modules.pop("otalink.device." + name, None)
    pkg = sys.modules.get("otalink.device")
    if pkg is not None and name in pkg.__dict__:
        delattr(pkg, name)


def _roundup(n, m):
    return (n + m - 1) // m * m


class Slots:
    def __init__(self, bdev, geom, regions=None, hooks=None):
        from otalink.device import flashcfg

        g = flashcfg.geometry(geom)
        self.geom = g
        es = g["erase_size"]
        ws = g["write_size"]
        self.es = es
        self.ws = ws
        self.slot_size = g["slot_size"]
        if regions is None:
            # one device holding the state area and both slots (unix, rp2, stm32); offsets are
            # relative to the board's otalink region of that device ("region": {"offset"})
            base = flashcfg.region_base(g)
            state = Region(bdev, base + g["state_offset"], g["state_sectors"] * es, es)
            offs = g["slot_offsets"]
            regions = (
                state,
                Region(bdev, base + offs[0], self.slot_size, es),
                Region(bdev, base + offs[1], self.slot_size, es),
            )
        self.state_region = regions[0]
        self.regions = (regions[1], regions[2])
        self.hooks = hooks
        self.trial_limit = g.get("trial_boots", 3)
        wb = g["deflate_wbits"] if deflate else 0
        if wb and not 9 <= wb <= 15:
            raise ValueError("deflate_wbits")
        self.wbits = wb  # DeflateIO(ring, RAW, wbits) decodes with exactly this window
        self.cap_flags = CAP_DEFLATE_SEG if wb else 0
        self.window = g.get("window", 16384)
        # program unit: a multiple of the write size that divides the erase sector; 1 KiB by
        # default (4x fewer calls than one 256-byte page per program, measured by slotbench)
        dflt = 1024 if es % 1024 == 0 and 1024 % ws == 0 else max(ws, 256)
        chunk = g.get("program_size", dflt)
        if chunk % ws or es % chunk:
            raise ValueError("program_size")
        self.chunk = chunk
        self.cbuf = bytearray(chunk)
        self.cmv = memoryview(self.cbuf)
        # deflate output steps: views of cbuf made once (slicing a memoryview allocates)
        step = _STEP if chunk % _STEP == 0 else chunk
        self.step = step
        self.steps = tuple(self.cmv[i : i + step] for i in range(0, chunk, step))
        self.margin = 2 * step + 512  # deflate input kept in the ring (see _STEP)
        self.fill = 0  # deflate output bytes waiting in cbuf
        self.pbuf = bytearray(4)  # a segment's length prefix
        self.seg_left = -1  # compressed bytes left in the current segment, -1 = prefix next
        self.w_cons = 0  # wire bytes taken out of the ring (segments)
        self.max_data = g.get("max_data", 4096)
        # The input ring, allocated once here (the largest block the storage side needs) and
        # reused by every transfer: a BEGIN late in a fragmented heap must not need a new
        # contiguous block. Capacity: one DATA chunk plus what a drain may leave behind (< one
        # program unit uncompressed, < the margin when a deflate stream is being fed).
        self.ring_size = self.max_data + (max(self.margin, chunk) if self.wbits else chunk)
        self.ring = RingIO(self.ring_size)
        self.store = Store(self.state_region, ws)
        self.store.load()
        flashcfg = None
        _drop("flashcfg")  # start-up only (see flash.py)
        self.live = False  # a transfer is running in this process
        self.dio = None
        self.sha = None
        self.confirmed_now = False

    # ---- simple properties --------------------------------------------------------------
    @property
    def active(self):
        return self.store.active

    @property
    def release_floor(self):
        return self.store.release_floor

    @property
    def trusted_time(self):
        return self.store.trusted_time

    def note_time(self, t):
        st = self.store
        if t > st.trusted_time:
            st.trusted_time = t
            self._commit()

    def caps(self):
        wb = self.wbits
        return (self.window, self.slot_size, self.es, self.ws, wb)

    def report(self):
        st = self.store
        out = []
        for s in st.slot:
            sha = s[5] if s[0] != C.SLOT_EMPTY else b""
            out.append([s[0], s[6].decode(), s[3], s[4], sha])
        act = st.slot[st.active]
        tb = 0
        if act[0] == C.SLOT_TRIAL:
            tb = act[2]
        elif st.boot_state == C.BOOT_REVERTED:
            tb = st.slot[1 - st.active][2]
        return (st.active, st.boot_state, st.last_error, out, tb)

    def transfer(self):
        st = self.store
        if self.live:
            return (C.PH_RECEIVING, self.t_wire, self.t_wlen, self.t_len)
        if st.tslot != NO_SLOT:
            return (C.PH_RECEIVING, st.wire_off, st.wire_len, st.slot[st.tslot][4])
        other = st.slot[1 - st.active]
        act = st.slot[st.active]
        if other[0] == C.SLOT_VERIFIED:
            return (C.PH_VERIFIED, 0, 0, other[4])
        if other[0] == C.SLOT_PENDING:
            return (C.PH_ACTIVATED, 0, 0, other[4])
        if act[0] == C.SLOT_TRIAL:
            return (C.PH_TRIAL, 0, 0, act[4])
        if self.confirmed_now:
            return (C.PH_CONFIRMED, 0, 0, act[4])
        return (C.PH_IDLE, 0, 0, 0)

    # ---- transfer -----------------------------------------------------------------------
    def begin(self, instr_hash, image_len, sha256, wire_len, compression, version,
              release_counter, kind, progress=None):  # fmt: skip
        st = self.store
        if image_len > self.slot_size or image_len <= 0:
            raise DeviceError(C.E_IMAGE_TOO_LARGE, self.slot_size)
        if release_counter <= st.release_floor:
            raise DeviceError(C.E_ROLLBACK, st.release_floor)
        if compression != C.COMP_NONE and (
            (compression != C.COMP_DEFLATE and compression != COMP_DEFLATE_SEG) or not self.wbits
        ):
            raise DeviceError(C.E_BAD_MESSAGE, compression)
        if compression == C.COMP_NONE and wire_len != image_len:
            raise DeviceError(C.E_WIRE_LENGTH, image_len)
        if isinstance(version, str):
            version = version.encode()
        if len(version) > 32:
            raise DeviceError(C.E_BAD_INSTRUCTION, 3)
        tgt = 1 - st.active
        if st.slot[st.active][0] == C.SLOT_TRIAL or st.slot[tgt][0] == C.SLOT_PENDING:
            # the other slot is the fallback of a trial / about to boot: finish that first
            raise DeviceError(C.E_BUSY, tgt)
        if self.live:
            if instr_hash == st.instr_hash:
                return self.t_wire  # same transfer after link loss: resume from RAM
            # a different instruction replaces a stale transfer (the session answers E_BUSY
            # itself while its transfer session is active)
            self.live = False
            self.dio = None
        s = st.slot[tgt]
        same = (
            st.instr_hash == instr_hash
            and s[4] == image_len
            and s[5] == sha256
            and st.comp == compression
            and st.wire_len == wire_len
        )
        try:
            if same and s[0] == C.SLOT_VERIFIED:
                # already received and verified (link lost after END): only finish() remains
                self._setup(tgt, image_len, wire_len, compression)
                self.t_wire = wire_len
                self.t_img = image_len
                self.t_done = True
                return wire_len
            if same and st.tslot == tgt and s[0] == C.SLOT_RECEIVING:
                # after a reboot (rare): decide.py rebuilds the hash from flash
                from otalink.device import decide

                try:
                    return decide.resume(self, tgt, image_len, wire_len, compression, progress)
                finally:
                    _drop("decide")
            # new transfer: mark the slot RECEIVING before touching its content
            st.slot[tgt] = [C.SLOT_RECEIVING, kind, 0, release_counter, image_len, sha256, version]
            st.tslot = tgt
            st.comp = compression
            st.wire_len = wire_len
            st.wire_off = 0
            st.image_off = 0
            st.instr_hash = instr_hash
            self.confirmed_now = False
            st.commit()
            self._erase(tgt, 0, image_len, progress)
            self._setup(tgt, image_len, wire_len, compression)
            return 0
        except OSError as e:
            raise DeviceError(C.E_FLASH, e.errno if hasattr(e, "errno") else 0)

    def _erase(self, tgt, start, image_len, progress):
        reg = self.regions[tgt]
        first = start // self.es
        last = _roundup(image_len, self.es) // self.es
        for i in range(first, last):
            reg.erase(i)
            if progress:
                progress(i + 1 - first, last - first)

    def _setup(self, tgt, image_len, wire_len, compression):
        ring = self.ring  # allocated once in __init__
        while ring.any():  # drop leftovers of an aborted transfer
            ring.readinto(self.cbuf)
        self.t_slot = tgt
        self.t_reg = self.regions[tgt]
        self.t_len = image_len
        self.t_wlen = wire_len
        self.t_comp = compression
        self.t_wire = 0
        self.t_img = 0
        self.t_done = False
        self.sha = hashlib.sha256()
        self.dio = None
        self.fill = 0
        self.seg_left = -1
        self.w_cons = 0
        if compression == C.COMP_DEFLATE:
            self.dio = deflate.DeflateIO(ring, deflate.RAW, self.wbits)
        self.live = True

    def write(self, offset, mv):
        # Hot path: no allocation in steady state (ring write, decompress into the preallocated
        # chunk, sha256 update, program, a checkpoint record every erase sector).
        if not self.live or self.t_done:
            raise DeviceError(C.E_BAD_STATE, 0)
        if offset != self.t_wire:
            raise DeviceError(C.E_BAD_OFFSET, self.t_wire)
        n = len(mv)
        if offset + n > self.t_wlen:
            raise DeviceError(C.E_WIRE_LENGTH, self.t_wlen)
        ring = self.ring
        try:
            w = ring.write(mv)
            while w < n:
                # DATA larger than max_data: make room (rare path, the slice allocates)
                self._drain(False)
                k = ring.write(mv[w:])
                if not k:
                    raise DeviceError(C.E_TOO_LARGE, self.max_data)
                w += k
            self.t_wire = offset + n
            self._drain(self.t_wire == self.t_wlen)
        except OSError as e:
            raise DeviceError(C.E_FLASH, e.errno if hasattr(e, "errno") else 0)
        return self.t_wire

    def _drain(self, final):
        ring = self.ring
        chunk = self.chunk
        cbuf = self.cbuf
        if self.t_comp == COMP_DEFLATE_SEG:
            return self._drain_seg(final)
        if self.dio is None:
            while ring.any() >= chunk:
                ring.readinto(cbuf)
                self._put(chunk)
            if final and ring.any():
                k = ring.any()
                ring.readinto(cbuf, k)
                self._put(k)
            return
        dio = self.dio
        steps = self.steps
        step = self.step
        fill = self.fill
        margin = self.margin
        while final or ring.any() >= margin:
            try:
                k = dio.readinto(steps[fill // step])
            except (OSError, EOFError, ValueError):
                raise DeviceError(C.E_DECOMPRESS, self.t_img)
            fill += k
            if fill == chunk:
                self._put(chunk)
                fill = 0
            if k < step:  # end of the stream
                break
        if final and fill:
            self._put(fill)
            fill = 0
        self.fill = fill

    def _drain_seg(self, final):
        # Deflate segments: read a length prefix, then pull one complete raw-deflate stream
        # (a fresh DeflateIO per segment: its state cannot be reused) while the ring holds the
        # margin or the whole rest of the segment; the decoder stops at the stream's final block,
        # so what it consumed is exact (ring.any() before - after). A segment ending on an
        # erase-sector boundary is a durable checkpoint: (wire offset, image offset).
        ring = self.ring
        chunk = self.chunk
        steps = self.steps
        step = self.step
        margin = self.margin
        fill = self.fill
        left = self.seg_left
        try:
            while True:
                avail = ring.any()
                if left < 0:
                    if avail < 4:
                        break
                    ring.readinto(self.pbuf)
                    p = self.pbuf
                    left = p[0] | p[1] << 8 | p[2] << 16 | p[3] << 24
                    self.w_cons += 4
                    if left == 0 or self.w_cons + left > self.t_wlen:
                        raise DeviceError(C.E_DECOMPRESS, self.t_img)
                    self.dio = None  # the previous segment's decoder goes first
                    self.dio = deflate.DeflateIO(ring, deflate.RAW, self.wbits)
                    continue
                if avail < margin and avail < left:
                    break  # more input needed (final: the wire is short; finish() reports)
                try:
                    k = self.dio.readinto(steps[fill // step])
                except (OSError, EOFError, ValueError):
                    raise DeviceError(C.E_DECOMPRESS, self.t_img)
                used = avail - ring.any()
                left -= used
                self.w_cons += used
                if left < 0:
                    raise DeviceError(C.E_DECOMPRESS, self.t_img)
                fill += k
                if fill == chunk:
                    self._put(chunk)
                    fill = 0
                if k < step:  # this segment's stream ended
                    if left:
                        raise DeviceError(C.E_DECOMPRESS, self.t_img)
                    self.dio = None
                    left = -1
                    img = self.t_img
                    if fill:
                        if self.w_cons != self.t_wlen:  # only the last segment may end here
                            raise DeviceError(C.E_DECOMPRESS, img)
                    elif img % self.es == 0 and img < self.t_len:
                        st = self.store
                        st.wire_off = self.w_cons
                        st.image_off = img
                        st.commit()
        finally:
            self.fill = fill
            self.seg_left = left
        if final and fill:
            self._put(fill)
            self.fill = 0

    def _put(self, k):
        # program one chunk (k valid bytes, the rest padded with 0xFF) at the image offset
        img = self.t_img
        if img + k > self.t_len:
            raise DeviceError(C.E_LENGTH_MISMATCH, img + k)
        cbuf = self.cbuf
        if k < self.chunk:
            for i in range(k, self.chunk):  # tail only: once per transfer
                cbuf[i] = 0xFF
            self.sha.update(self.cmv[:k])
        else:
            self.sha.update(cbuf)
        self.t_reg.program(img, cbuf)
        img += k
        self.t_img = img
        if img % self.es == 0 and self.t_comp == C.COMP_NONE and img < self.t_len:
            # durable checkpoint at every erase-sector boundary (uncompressed: wire == image)
            st = self.store
            st.wire_off = img
            st.image_off = img
            st.commit()

    def finish(self):
        # Read back the whole slot and compare sha256 and length; VERIFIED on success.
        if not self.live:
            return C.E_BAD_STATE
        code = C.OK
        try:
            if not self.t_done:
                if self.t_wire != self.t_wlen:
                    return C.E_WIRE_LENGTH
                try:
                    self._drain(True)
                    if self.dio is not None and self.t_img == self.t_len:
                        # the stream must end here: no trailing output
                        if self.dio.readinto(self.cbuf, 1):
                            code = C.E_LENGTH_MISMATCH
                except DeviceError as e:
                    code = e.code
                except (OSError, EOFError, ValueError):
                    code = C.E_DECOMPRESS
                if code == C.OK and self.t_img != self.t_len:
                    code = C.E_LENGTH_MISMATCH
                if code == C.OK and self.t_comp == COMP_DEFLATE_SEG:
                    if self.w_cons != self.t_wlen or self.seg_left >= 0:
                        code = C.E_DECOMPRESS  # bytes after the last segment, or a cut one
                st = self.store
                if code == C.OK and self.sha.digest() != st.slot[self.t_slot][5]:
                    code = C.E_HASH_MISMATCH
            if code == C.OK and not self._hash_ok(self.t_slot):
                code = C.E_HASH_MISMATCH
            st = self.store
            s = st.slot[self.t_slot]
            s[0] = C.SLOT_VERIFIED if code == C.OK else C.SLOT_EMPTY
            st.tslot = NO_SLOT
            st.wire_off = 0
            st.image_off = 0
            self.live = False
            self.dio = None
            st.commit()
        except OSError:
            self.live = False
            return C.E_FLASH
        return code

    def _hash_ok(self, slot):
        # read the recorded image length back from flash and compare with the recorded sha256
        s = self.store.slot[slot]
        n = s[4]
        if n <= 0 or n > self.slot_size:
            return False
        reg = self.regions[slot]
        h = hashlib.sha256()
        buf = self.cbuf
        c = self.chunk
        full = n - n % c
        for a in range(0, full, c):
            reg.read(a, buf)
            h.update(buf)
        if full < n:
            reg.read(full, buf)
            h.update(self.cmv[: n - full])
        return h.digest() == s[5]

    # ---- activation, confirm, revert, abort ----------------------------------------------
    def activate(self):
        st = self.store
        tgt = 1 - st.active
        s = st.slot[tgt]
        if self.live or s[0] != C.SLOT_VERIFIED:
            return C.E_NO_IMAGE
        if s[3] <= st.release_floor:
            return C.E_ROLLBACK
        s[0] = C.SLOT_PENDING
        s[2] = 0
        self._commit()
        if self.hooks:
            self.hooks.activated(tgt)
        return C.OK

    def confirm(self):
        st = self.store
        s = st.slot[st.active]
        if s[0] == C.SLOT_CONFIRMED:
            return C.OK
        if s[0] != C.SLOT_TRIAL:
            return C.E_NO_IMAGE
        if not st.flags & FLAG_TRIAL_OK:
            return C.E_SELFTEST
        s[0] = C.SLOT_CONFIRMED
        if s[3] > st.release_floor:
            st.release_floor = s[3]
        st.boot_state = C.BOOT_NORMAL
        st.last_error = C.OK
        self._commit()
        self.confirmed_now = True
        if self.hooks:
            self.hooks.confirmed(st.active)
        return C.OK

    def revert(self):
        # Host-requested: cancel a pending activation, or leave a trial slot for the confirmed
        # one (takes effect at the next boot; the session reboots).
        st = self.store
        tgt = 1 - st.active
        o = st.slot[tgt]
        a = st.slot[st.active]
        if o[0] == C.SLOT_PENDING:
            o[0] = C.SLOT_REJECTED
            self._commit()
            if self.hooks:
                self.hooks.reverted(st.active)
            return C.OK
        if a[0] == C.SLOT_TRIAL and o[0] == C.SLOT_CONFIRMED:
            self._revert_trial(C.E_ABORTED)
            return C.OK
        return C.E_NO_IMAGE

    def abort(self):
        # drop the transfer in progress (or a verified, not yet activated image)
        st = self.store
        tgt = 1 - st.active
        s = st.slot[tgt]
        self.live = False
        self.dio = None
        if st.tslot != NO_SLOT or s[0] in (C.SLOT_RECEIVING, C.SLOT_VERIFIED):
            s[0] = C.SLOT_EMPTY
            st.tslot = NO_SLOT
            st.wire_off = 0
            st.image_off = 0
            self._commit()
        return C.OK

    def _commit(self):
        try:
            self.store.commit()
        except OSError as e:
            raise DeviceError(C.E_FLASH, e.errno if hasattr(e, "errno") else 0)

    def _revert_trial(self, reason):
        st = self.store
        st.slot[st.active][0] = C.SLOT_REJECTED
        st.active = 1 - st.active
        st.boot_state = C.BOOT_REVERTED
        st.last_error = reason
        st.flags &= ~FLAG_TRIAL_OK
        self._commit()
        if self.hooks:
            self.hooks.reverted(st.active)

    # ---- boot ---------------------------------------------------------------------------
    def boot(self):
        # The boot decision table lives in decide.py, loaded for this call only: it runs at
        # start-up, so its code need not stay in the agent's heap while it serves the line.
        from otalink.device import decide

        try:
            return decide.boot(self)
        finally:
            _drop("decide")

    def trial_passed(self):
        # the trial bundle imported and passed its self-test in this boot
        st = self.store
        if st.slot[st.active][0] == C.SLOT_TRIAL and not st.flags & FLAG_TRIAL_OK:
            st.flags |= FLAG_TRIAL_OK
            self._commit()

    def trial_failed(self, code):
        # the trial bundle raised on import (E_BOOT_CRASH) or failed its self-test (E_SELFTEST):
        # roll back now, without waiting for the boot count
        st = self.store
        if st.slot[st.active][0] == C.SLOT_TRIAL:
            self._revert_trial(code)
            return True
        return False
