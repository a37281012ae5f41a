# A/B slots of the device agent: transfer into the inactive slot, read-back verification,
# activation, trial boot, confirm and rollback, over the block-device protocol (flash.py) with
# every decision persisted power-safely (store.py). docs/device.md describes the states, the boot
# decision table (BOOT_TABLE below is that table, as data) and the power-safety argument.
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
# Errors that stop an operation are raised as DeviceError(code, detail) from device/errors.py.
# Changes: begin() with another instruction while a transfer is live in this process replaces
# that transfer (was E_BUSY; the session guards its active transfer session itself).
import hashlib

try:
    import deflate
except ImportError:  # a port built without it: announce deflate_wbits 0 (no compression)
    deflate = None
from micropython import RingIO, const
from otalink.device.errors import DeviceError
from otalink.device.flash import Region, geometry, region_base
from otalink.device.store import FLAG_TRIAL_OK, NO_SLOT, Store
from otalink.protocol import codes as C

# Deflate input kept in the ring before an output chunk is pulled: the decompressor must never
# run dry mid-symbol (DeflateIO raises EOFError and its state is lost). A zlib-made stream needs at
# most ~1.01 input bytes per output byte (it stores what it cannot shrink) plus a dynamic block
# header (<= ~290 bytes): 2048 covers a 1 KiB program unit. A stream crafted to need more only
# fails with E_DECOMPRESS (its output is hashed and never activated).
_MARGIN = const(2048)

# boot decision table --------------------------------------------------------------------
# actions
A_RUN = const(0)  # run the active slot (confirmed)
A_START_TRIAL = const(1)  # the other slot was activated: make it active, on trial (boot 1)
A_CONTINUE_TRIAL = const(2)  # active slot still on trial: count this boot
A_REVERT = const(3)  # give up the trial slot: reject it, fall back to the other slot
A_REJECT_OTHER = const(4)  # the pending slot fails its hash: reject it
A_SWITCH = const(5)  # active slot unusable, the other is confirmed: run the other
A_NONE = const(6)  # nothing bootable: run the agent without an application
# conditions (evaluated lazily; hashing a slot reads it back)
K_ANY = const(0)
K_OTHER_OK = const(1)  # other slot's content matches its recorded sha256
K_OTHER_BAD = const(2)
K_EXHAUSTED_CRASHED = const(3)  # trial boots used up, last boot never passed the self-test
K_EXHAUSTED = const(4)  # trial boots used up (self-test passed, never confirmed)
K_ACTIVE_BAD = const(5)  # active slot's content does not match its recorded sha256
K_ACTIVE_OK = const(6)


def _m(*states):
    m = 0
    for s in states:
        m |= 1 << s
    return m


_ALL = const(0xFF)
# (active slot states, other slot states, condition, action, reason). First matching row wins;
# REJECT_OTHER and REVERT change state without running anything and are followed by a new pass.
# docs/device.md "Boot decisions" is this table in prose; keep both in step.
BOOT_TABLE = (
    (_ALL, _m(C.SLOT_PENDING), K_OTHER_OK, A_START_TRIAL, C.OK),
    (_ALL, _m(C.SLOT_PENDING), K_OTHER_BAD, A_REJECT_OTHER, C.E_HASH_MISMATCH),
    (_m(C.SLOT_TRIAL), _ALL, K_EXHAUSTED_CRASHED, A_REVERT, C.E_BOOT_CRASH),
    (_m(C.SLOT_TRIAL), _ALL, K_EXHAUSTED, A_REVERT, C.E_NOT_CONFIRMED),
    (_m(C.SLOT_TRIAL), _ALL, K_ACTIVE_BAD, A_REVERT, C.E_HASH_MISMATCH),
    (_m(C.SLOT_TRIAL), _ALL, K_ANY, A_CONTINUE_TRIAL, C.OK),
    (_m(C.SLOT_CONFIRMED), _ALL, K_ACTIVE_OK, A_RUN, C.OK),
    (_ALL, _m(C.SLOT_CONFIRMED), K_OTHER_OK, A_SWITCH, C.OK),
    (_ALL, _ALL, K_ANY, A_NONE, C.OK),
)


def _roundup(n, m):
    return (n + m - 1) // m * m


class Slots:
    def __init__(self, bdev, geom, regions=None, hooks=None):
        g = geometry(geom)
        self.geom = g
        es = g["erase_size"]
        ws = g["write_size"]
        self.es = es
        self.ws = ws
        self.slot_size = g["slot_size"]
        if regions is None:
            # one device holding the state area and both slots (unix, rp2, stm32); offsets are
            # relative to the board's otalink region of that device ("region": {"offset"})
            base = region_base(g)
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
        self.wbits = g.get("deflate_wbits", 10) if deflate else 0
        self.window = g.get("window", 16384)
        # program unit: a multiple of the write size that divides the erase sector; 1 KiB by
        # default (4x fewer calls than one 256-byte page per program, measured by slotbench)
        dflt = 1024 if es % 1024 == 0 and 1024 % ws == 0 else max(ws, 256)
        chunk = g.get("program_size", dflt)
        if chunk % ws or es % chunk:
            raise ValueError("program_size")
        self.chunk = chunk
        # deflate input margin (see _MARGIN), scaled for program units above 1 KiB
        self.margin = max(_MARGIN, chunk + chunk // 8 + 512)
        self.cbuf = bytearray(chunk)
        self.cmv = memoryview(self.cbuf)
        self.max_data = g.get("max_data", 4096)
        self.ring = None  # RingIO, allocated at the first begin() and kept
        self.store = Store(self.state_region, ws)
        self.store.load()
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
        if compression != C.COMP_NONE and (compression != C.COMP_DEFLATE or not self.wbits):
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
                return self._resume(tgt, image_len, wire_len, compression, progress)
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
        # input ring: one DATA chunk + a partial program unit (+ the decompressor's margin);
        # kept across transfers, replaced only when a bigger one is needed
        need = self.max_data + self.chunk + (self.margin if compression else 0)
        if self.ring is None or self.ring_size < need:
            self.ring = None
            self.ring = RingIO(need)
            self.ring_size = need
        ring = self.ring
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
        if compression == C.COMP_DEFLATE:
            self.dio = deflate.DeflateIO(ring, deflate.RAW, self.wbits)
        self.live = True

    def _resume(self, tgt, image_len, wire_len, compression, progress):
        # After a reboot: rebuild the running hash from flash up to the durable offset, erase
        # what may have been programmed after it. A compressed transfer restarts at 0: the
        # decompressor's state died with the process.
        st = self.store
        d = st.image_off if compression == C.COMP_NONE else 0
        self._erase(tgt, d, image_len, progress)
        self._setup(tgt, image_len, wire_len, compression)
        reg = self.regions[tgt]
        sha = self.sha
        buf = self.cbuf
        for a in range(0, d, self.chunk):
            reg.read(a, buf)
            sha.update(buf)
        self.t_wire = d
        self.t_img = d
        return d

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
        while final or ring.any() >= self.margin:
            try:
                k = dio.readinto(cbuf)
            except (OSError, EOFError, ValueError):
                raise DeviceError(C.E_DECOMPRESS, self.t_img)
            if k:
                self._put(k)
            if k < chunk:
                break

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
        if img % self.es == 0 and self.dio is None and img < self.t_len:
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
        # Apply BOOT_TABLE until a row that runs something (RUN / CONTINUE_TRIAL / START_TRIAL /
        # SWITCH / NONE). Returns (slot to run or -1, action, reason of the last state change).
        st = self.store
        self.live = False
        if self.hooks:
            r = self.hooks.running()
            if r is not None and r != st.active and st.slot[r][0] != C.SLOT_PENDING:
                # the bootloader chose another slot than ours (ESP32 rollback of an unconfirmed
                # firmware): the trial slot crashed; follow the bootloader
                if st.slot[st.active][0] == C.SLOT_TRIAL:
                    self._revert_trial(C.E_BOOT_CRASH)
                else:
                    st.active = r
                    self._commit()
        hashes = {}
        reason = C.OK
        for _ in range(4):  # at most REJECT_OTHER / REVERT then a running row
            a = st.active
            o = 1 - a
            sa = st.slot[a]
            so = st.slot[o]
            for row in BOOT_TABLE:
                if not (row[0] >> sa[0]) & 1 or not (row[1] >> so[0]) & 1:
                    continue
                if not self._cond(row[2], a, o, hashes):
                    continue
                act = row[3]
                break
            if row[4] != C.OK:
                reason = row[4]
            if act == A_REJECT_OTHER:
                so[0] = C.SLOT_REJECTED
                st.last_error = row[4]
                self._commit()
                continue
            if act == A_REVERT:
                self._revert_trial(row[4])
                continue
            if act == A_START_TRIAL:
                st.active = o
                so[0] = C.SLOT_TRIAL
                so[2] = 1
                st.flags &= ~FLAG_TRIAL_OK
                st.boot_state = C.BOOT_TRIAL
                st.last_error = C.OK
                self._commit()
                return (o, act, reason)
            if act == A_CONTINUE_TRIAL:
                sa[2] += 1
                st.flags &= ~FLAG_TRIAL_OK
                self._commit()
                return (a, act, reason)
            if act == A_SWITCH:
                st.active = o
                self._commit()
                return (o, act, reason)
            if act == A_RUN:
                return (a, act, reason)
            return (-1, A_NONE, reason)
        return (-1, A_NONE, reason)

    def _cond(self, k, a, o, hashes):
        if k == K_ANY:
            return True
        if k == K_OTHER_OK or k == K_OTHER_BAD:
            if o not in hashes:
                hashes[o] = self._hash_ok(o)
            return hashes[o] == (k == K_OTHER_OK)
        if k == K_ACTIVE_OK or k == K_ACTIVE_BAD:
            if a not in hashes:
                hashes[a] = self._hash_ok(a)
            return hashes[a] == (k == K_ACTIVE_OK)
        st = self.store
        exhausted = st.slot[a][2] >= self.trial_limit
        crashed = not st.flags & FLAG_TRIAL_OK
        if k == K_EXHAUSTED_CRASHED:
            return exhausted and crashed
        return exhausted  # K_EXHAUSTED

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
