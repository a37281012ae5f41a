# The start of a transfer in Slots (slotops.begin / begin_g / probe are these), loaded at BEGIN /
# PROBE and dropped again (the agent's transfer keeps session.py, then slotwrite.py):
#   begin_g(s, ...) -> generator -> wire offset to send from  (a slice per erased sector and per
#                     16 KiB of a resume's re-hash)
#   probe(s, image_len, wire_len, compression)   a receive probe: decoded and hashed, not written
# and BEGIN's / PROBE's second stage of the agent (begin.py returns these generators; this module
# leaves the heap with BEGIN's, the transfer keeps session.py):
#   start(agent, instr, params, ins, same) -> generator   replace an older stream, load the
#                                  transfer (session.Transfer), erase (sliced), ACK
#   probe_start(agent, params) -> generator   the same into no flash (a dry run)
import hashlib

from micropython import const
from otalink.device.flash import _mod
from otalink.protocol.errors import ProtocolError as DeviceError

# protocol/codes.py values used here, as private consts (tests/protocol/test_wire.py checks them)
_OK = const(0)
_COMP_NONE = const(0)
_COMP_DEFLATE = const(1)
_COMP_DEFLATE_SEG = const(2)
_COMP_PATCH = const(3)
_COMP_PATCH_DEFLATE_SEG = const(4)
_E_BAD_MESSAGE = const(10)
_E_WIRE_LENGTH = const(22)
_MSG_PROGRESS = const(0x7)
_PH_ERASING = const(2)
_E_ROLLBACK = const(34)
_E_IMAGE_TOO_LARGE = const(36)
_E_BAD_INSTRUCTION = const(39)
_E_FLASH = const(40)
_E_BUSY = const(43)
_SLOT_RECEIVING = const(1)
_SLOT_VERIFIED = const(2)
_SLOT_PENDING = const(3)
_SLOT_TRIAL = const(4)
_IDLE = const(0)  # agent._IDLE
_RECEIVING = const(1)  # agent._RECEIVING


def _err(e):
    # a flash error (OSError) as the protocol's E_FLASH
    return DeviceError(_E_FLASH, e.errno if hasattr(e, "errno") else 0)


def _check(s, image_len, wire_len, compression, version, release_counter):
    # begin's refusals, before anything changes; -> (target slot, version bytes). (Its own
    # function: each function's bytecode is one heap block, and these load in 512-byte holes,
    # tests/device_storage/test_memory.py.)
    if image_len > s.slot_size or image_len <= 0:
        raise DeviceError(_E_IMAGE_TOO_LARGE, s.slot_size)
    if release_counter <= s.release_floor:
        raise DeviceError(_E_ROLLBACK, s.release_floor)
    # a patch raw (3) needs no decoder; deflate (1), segments (2) and a patch in segments (4) do
    if (
        compression != _COMP_NONE
        and compression != _COMP_PATCH
        and (compression > _COMP_PATCH_DEFLATE_SEG or not s.wbits)
    ):
        raise DeviceError(_E_BAD_MESSAGE, compression)
    if compression == _COMP_NONE and wire_len != image_len:
        raise DeviceError(_E_WIRE_LENGTH, image_len)
    if isinstance(version, str):
        version = version.encode()
    if len(version) > 32:
        raise DeviceError(_E_BAD_INSTRUCTION, 3)
    tgt = 1 - s.active
    if s.slot[s.active][0] == _SLOT_TRIAL or s.slot[tgt][0] == _SLOT_PENDING:
        # the other slot is the fallback of a trial / about to boot: finish that first
        raise DeviceError(_E_BUSY, tgt)
    return tgt, version


def begin_g(s, instr_hash, image_len, sha256, wire_len, compression, version, release_counter,
            kind, progress=None):  # fmt: skip
    # begin() as a generator: it yields after each erased sector and every 16 KiB of a resume's
    # re-hash, so the agent never holds the loop for a whole slot erase
    tgt, version = _check(s, image_len, wire_len, compression, version, release_counter)
    pm = None
    if compression >= _COMP_PATCH:
        # a patch: only against the base the instruction binds (slotpatch.py, loaded for it)
        pm = _mod("slotpatch")
        pm.check_base(s)
    if s.live:
        if instr_hash == s.instr_hash and s.comp == compression and s.wire_len == wire_len:
            return s.t_wire  # same transfer after link loss: resume from RAM
        # a different instruction, or the same one with another stream (compression,
        # wire_len), replaces a stale transfer from 0 below: its offsets and decoder state mean
        # nothing for the new stream (the session answers E_BUSY itself while its transfer
        # session is active)
        s.live = 0
        s.dio = None
    v = s.slot[tgt]
    same = (
        s.instr_hash == instr_hash
        and v[4] == image_len
        and v[5] == sha256
        and s.comp == compression
        and s.wire_len == wire_len
    )
    if s.cbuf is None:
        _mod("store").bufs(s)  # (a Slots made without them: its transfer buffers now)
    try:
        if same and v[0] == _SLOT_VERIFIED:
            # already received and verified (link lost after END): only finish() remains
            _setup(s, tgt, image_len)
            s.live = 2
            s.t_wire = wire_len
            s.t_img = image_len
            return wire_len
        d = w = 0
        if same and s.tslot == tgt and v[0] == _SLOT_RECEIVING:
            # After a reboot: rebuild the running hash from flash up to the durable image
            # offset, erase what may have been programmed after it, continue at the durable
            # wire offset. Uncompressed: both offsets are equal (a checkpoint every erase
            # sector). Deflate segments: a checkpoint at every segment end on a sector boundary.
            # Plain deflate restarts at 0: the decompressor's state died with the process.
            if compression != _COMP_DEFLATE:
                d = s.image_off
                w = s.wire_off
        else:
            # new transfer: mark the slot RECEIVING before touching its content
            s.slot[tgt] = [_SLOT_RECEIVING, kind, 0, release_counter, image_len, sha256, version]
            s.tslot = tgt
            s.comp = compression
            s.wire_len = wire_len
            s.wire_off = 0
            s.image_off = 0
            s.instr_hash = instr_hash
            if s.confirmed_now:
                s.confirmed_now = False  # (the class default otherwise: no table entry)
            s.commit()
        if pm is not None:
            d, w = pm.start(s, image_len, d, w)  # the applier, from the durable checkpoint
        reg = s.regions[tgt]
        es = s.es
        first = d // es
        last = (image_len + es - 1) // es
        for i in range(first, last):
            reg.erase(i)
            if progress:
                progress(i + 1 - first, last - first)
            yield
        _setup(s, tgt, image_len)
        buf = s.cbuf
        for a in range(0, d, s.chunk):
            reg.read(a, buf)
            s.sha.update(buf)
            if not (a + s.chunk) & 0x3FFF:
                yield
        s.t_wire = s.w_cons = w
        s.t_img = d
        return w
    except OSError as e:
        raise _err(e)


def _setup(s, slot, image_len):
    ring = s.ring  # allocated once in Slots()
    while ring.any():  # drop leftovers of an aborted transfer
        ring.readinto(s.cbuf)
    s.t_slot = slot
    s.t_len = image_len
    s.t_wire = 0
    s.t_img = 0
    s.sha = hashlib.sha256()
    s.dio = None
    s.fill = 0
    s.seg_left = -1
    s.w_cons = 0
    if s.comp < _COMP_PATCH:
        try:
            del s.write  # a patch transfer's write path (slotpatch) before this one
        except AttributeError:
            pass
    if s.comp == _COMP_DEFLATE:
        import deflate

        s.dio = deflate.DeflateIO(ring, deflate.RAW, s.wbits)
    s.live = 1


def probe(s, image_len, wire_len, compression):
    # A receive probe (docs/protocol.md "Receive probe"): this Slots takes the DATA stream through
    # the same ring, decoder and hash as a transfer, and writes nothing (s.dry: no program, no
    # record). Only the agent's probe uses it, and drops it after probe_end().
    if image_len > s.slot_size or image_len <= 0:
        raise DeviceError(_E_IMAGE_TOO_LARGE, s.slot_size)
    if compression != _COMP_NONE and (
        (compression != _COMP_DEFLATE and compression != _COMP_DEFLATE_SEG) or not s.wbits
    ):
        raise DeviceError(_E_BAD_MESSAGE, compression)
    s.dry = True
    s.comp = compression
    s.wire_len = wire_len
    if s.cbuf is None:
        _mod("store").bufs(s)
    _setup(s, 0, image_len)
    return _OK


def _transfer(a, dry, comp):
    # The Slots with its ring and program unit first (store.py loaded for it, then dropped),
    # then session.py: its code and the decoder's room take the hole store.py left
    from otalink.device import agent as _a

    s = _a._lazy("otalink.device.slots").Slots(a.bdev, a.geom, None, None, True)
    return _a._lazy("otalink.device.session").Transfer(a, s, dry, comp)


def _erase_progress(a):
    # begin_g calls this per erased sector; every 8th (and the last) goes on the wire
    # so the host sees the device alive during a long erase without a frame per sector
    def progress(done, total):
        if done == total or not done & 7:
            a._small(_MSG_PROGRESS, _PH_ERASING, done, total)

    return progress


def start(a, instr, params, ins, same):
    # BEGIN's second stage for the agent: begin.py (checks, verification, the application's
    # offer) returned this generator and left the heap before the transfer's buffers are made
    image_len, sha, comp, wire_len = params
    issued = ins[1]
    # BEGIN's stream fields, before anything is replaced (a refused BEGIN leaves a live
    # transfer as it was)
    if comp == _COMP_NONE and wire_len != image_len:
        raise DeviceError(_E_WIRE_LENGTH, wire_len)
    if a.instr is not None and params != a.params:
        # Another stream (another image, or the same instruction with another compression /
        # wire_len) replaces the interrupted one from 0: none of its offsets or decoder state
        # carries over (protocol section 7).
        a._unload()
        a._code("abort")
        a.instr = None
        a.state = _IDLE
    x = a.xfer
    if x is None:
        x = a.xfer = _transfer(a, False, comp)
    s = x.slots
    if comp != _COMP_NONE and comp != _COMP_PATCH and not s.wbits:
        a._unload()
        raise DeviceError(_E_BAD_MESSAGE, comp)  # no deflate on this port (caps wbits 0)
    if issued > s.trusted_time:
        # Slots.note_time, without loading slotops.py beside the transfer's buffers
        s.trusted_time = issued
        try:
            s.commit()
        except OSError as e:
            raise _err(e)
    s.pbase = ins[5]  # the delta base the instruction binds (None: format 1), for a patch
    try:
        resume = yield from begin_g(
            s, hashlib.sha256(instr).digest(), image_len, sha, wire_len, comp, ins[2], ins[3],
            ins[4], _erase_progress(a),
        )  # fmt: skip
    except DeviceError:
        a._unload()
        raise
    a.instr = instr
    a.params = params
    a.ins = ins
    _receive(a, x, wire_len, resume)


def probe_start(a, params):
    # PROBE's second stage for the agent: the transfer machinery over a Slots that writes nothing
    image_len, _sha, comp, wire_len = params
    x = a.xfer = _transfer(a, True, comp)
    try:
        probe(x.slots, image_len, wire_len, comp)
    except DeviceError:
        a._unload()
        raise
    yield
    a.instr = None
    a.ins = None
    a.params = params
    _receive(a, x, wire_len, 0)


def _receive(a, x, wire_len, resume):
    # BEGIN's and PROBE's end: the window opens at the resume offset, the first ACK says so

    a.wire_len = wire_len
    rx = x.rx
    rx.window = a.window
    rx.wire_len = wire_len
    rx.resume(resume)
    a.state = _RECEIVING
    x._ack()
