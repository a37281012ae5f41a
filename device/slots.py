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
#   begin_g(...) / finish_g()   the same as generators yielding between slices (an erased sector,
#         16 KiB hashed): the agent runs them beside the application (issue 11)
#   probe(image_len, wire_len, compression)   a receive probe: this Slots decodes and hashes
#         DATA through write() and writes nothing (no program, no record); probe_end() ->
#         (code, image bytes decoded, their sha256)
#   write(offset, mv) -> next expected wire offset     (zero heap allocation in steady state)
#   finish() -> code        activate() / confirm() / revert() / abort() -> code
#   boot() -> (slot, action, reason)       trial_passed()      trial_failed(code)
#   note_fault(code)   note_wdt()   (issue 11: the loader's and the supervisor's records)
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

from micropython import const
from otalink.device.flash import _mod

# protocol/codes.py values used here, as private consts (folded by the compiler: codes.py's ~100
# names would stay in the heap; tests/protocol/test_wire.py checks each copy)

# The state record, format 2 (layout, the fmt-1 reader and the power-safety argument: store.py;
# a stable interface between the immutable loader and every agent version). REC is shared with
# store.py; one literal (a concatenation would be built at import and intern its short pieces).
REC = "<HBBIBBBBIIBBBBII32s32sBBBBII32s32sBBBxIII32s20s"
_MAGIC = const(0x544F)  # b"OT" little-endian
_FMT = const(2)
_BODY = const(240)  # struct.calcsize(REC), checked by tests/device_storage/test_consts.py

# The operations Slots.__getattr__ finds: the start-up ones in decide.py, the rest in slotops.py
# (tests/device_storage/test_consts.py checks both lists against the modules' public functions)
_START = const(("boot", "trial_passed", "trial_failed", "note_fault", "note_wdt"))
_OPS = const(("caps", "note_time", "report", "transfer", "begin", "finish", "activate",
              "confirm", "revert", "abort", "park", "begin_g", "finish_g", "probe",
              "probe_end"))  # fmt: skip


def _op(s, name, a):
    return getattr(_mod("decide" if name in _START else "slotops"), name)(s, *a)


_w = None  # slotwrite.write while slotwrite.py is loaded (it sets this; drop() clears it)


def _write():
    from otalink.device import slotwrite

    return slotwrite.write


def drop_write():
    # forget the write path (the agent after a transfer): its code leaves the heap
    global _w
    _w = None
    import sys

    sys.modules.pop("otalink.device.slotwrite", None)
    pkg = sys.modules.get("otalink.device")
    if pkg is not None and "slotwrite" in pkg.__dict__:
        delattr(pkg, "slotwrite")


class Slots:
    # Defaults an instance overrides only when they change (a receive probe, test hooks, a
    # confirm, the decoder's room): no entry each in the instance's attribute table. A
    # transfer's Slots then keeps <= 47 attributes: the table is never grown (copied) to 59
    # entries in the middle of BEGIN, when the heap is at its most crowded.
    dry = False
    hooks = None
    confirmed_now = False
    buffer = None

    def __init__(self, bdev, geom, regions=None, hooks=None, buffers=True):
        # buffers=False: the state only (the agent while idle); the transfer's buffers come at
        # begin() / probe() and go with rest()
        _mod("store").init(self, bdev, geom, regions, hooks, buffers)

    def __getattr__(self, name):
        # A name not set on the object nor defined here: an operation of _START / _OPS, loaded
        # for the call and dropped again. The callable holds the name, not the module, so a
        # stale stack slot of the caller never keeps that code in the heap.
        if name not in _OPS and name not in _START:
            raise AttributeError(name)
        return lambda *a: _op(self, name, a)

    def rest(self):
        # The transfer machinery leaves (the agent after END / ABORT / keep_ms, and a failed
        # DATA's handler): the RAM state of a transfer, its buffers and the write path go; the
        # durable record stays. Here, not in slotops.py: freeing memory must need none (a
        # MemoryError's handler calls it with no room to import anything).
        self.live = 0
        self.dio = None
        self.sha = None
        self.ring = self.cbuf = self.steps = self.buffer = None
        drop_write()

    # ---- the DATA path ------------------------------------------------------------------
    def write(self, offset, mv):
        # The hot path lives in slotwrite.py, loaded with the transfer and dropped after it (an
        # idle agent holds only this class and the state); _w is its write() while loaded.
        w = _w
        if w is None:
            w = _write()
        return w(self, offset, mv)

    # ---- the state record -----------------------------------------------------------------
    def commit(self):
        # Append the persisted fields as a new record, atomically (store.py says why): at the
        # next position after the newest record that reads blank; entering a sector erases it
        # first (the newest record is in another sector: nothing is lost); a position that is
        # not blank (a torn record, erase garbage) is skipped, never programmed. The position is
        # probed into the record buffer, so its padding is 0xFF when the record is packed.
        if self.dry:
            return  # a receive probe's Slots persists nothing
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
            if min(buf) == 0xFF:  # blank (min over a bytearray allocates nothing)
                break
        self.seq += 1
        a, b = self.slot
        struct.pack_into(
            REC, buf, 0, _MAGIC, _FMT, self.flags, self.seq,
            self.active, self.boot_state, self.last_error, self.tslot,
            self.release_floor, self.trusted_time,
            a[0], a[1], a[2], len(a[6]), a[3], a[4], a[5], a[6],
            b[0], b[1], b[2], len(b[6]), b[3], b[4], b[5], b[6],
            self.comp, self.fault, self.wdt_trips, self.wire_len, self.wire_off,
            self.image_off, self.instr_hash, self.ck,
        )  # fmt: skip
        struct.pack_into(b"<I", buf, _BODY, crc32(self.rbody))
        reg.program(addr, buf)
        self.pos = p
