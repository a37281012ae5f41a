# The Slots operations off the DATA path, loaded per call by Slots.__getattr__ (slots.py) and
# dropped again (flash._mod), so the serving agent's heap holds none of this code: it is loaded
# for a BEGIN, an END, a report, an activation ... and freed when that call returns. `s` is the
# Slots object (these were its methods: the API is in slots.py). The start-up operations (boot,
# the trial reports) are in decide.py, which also lends finish() its read-back hash and revert()
# its trial rollback.
import hashlib

from micropython import const
from otalink.device.errors import DeviceError
from otalink.device.flash import _mod

# protocol/codes.py values used here (private copies, checked by tests/protocol/test_wire.py)
_OK = const(0)
_COMP_NONE = const(0)
_COMP_DEFLATE = const(1)
_COMP_DEFLATE_SEG = const(2)
_E_BAD_MESSAGE = const(10)
_E_BAD_STATE = const(12)
_E_WIRE_LENGTH = const(22)
_E_ROLLBACK = const(34)
_E_IMAGE_TOO_LARGE = const(36)
_E_HASH_MISMATCH = const(37)
_E_LENGTH_MISMATCH = const(38)
_E_BAD_INSTRUCTION = const(39)
_E_FLASH = const(40)
_E_DECOMPRESS = const(41)
_E_NO_IMAGE = const(42)
_E_BUSY = const(43)
_E_SELFTEST = const(50)
_E_ABORTED = const(61)
_SLOT_EMPTY = const(0)
_SLOT_RECEIVING = const(1)
_SLOT_VERIFIED = const(2)
_SLOT_PENDING = const(3)
_SLOT_TRIAL = const(4)
_SLOT_CONFIRMED = const(5)
_SLOT_REJECTED = const(6)
_PH_IDLE = const(0)
_PH_RECEIVING = const(1)
_PH_VERIFIED = const(4)
_PH_ACTIVATED = const(5)
_PH_TRIAL = const(6)
_PH_CONFIRMED = const(7)
_BOOT_NORMAL = const(0)
_BOOT_REVERTED = const(2)
_NO_SLOT = const(255)  # store.py: tslot of no transfer
_FLAG_TRIAL_OK = const(1)  # store.py: flags bit 0


def _err(e):
    # a flash error (OSError) as the protocol's E_FLASH
    return DeviceError(_E_FLASH, e.errno if hasattr(e, "errno") else 0)


def _commit(s):
    try:
        s.commit()
    except OSError as e:
        raise _err(e)


# ---- reports ----------------------------------------------------------------------------
def caps(s):
    return s.capv


def note_time(s, t):
    if t > s.trusted_time:
        s.trusted_time = t
        _commit(s)


def report(s):
    out = []
    for v in s.slot:
        out.append([v[0], v[6].decode(), v[3], v[4], v[5] if v[0] != _SLOT_EMPTY else b""])
    act = s.slot[s.active]
    tb = 0
    if act[0] == _SLOT_TRIAL:
        tb = act[2]
    elif s.boot_state == _BOOT_REVERTED:
        tb = s.slot[1 - s.active][2]
    return (s.active, s.boot_state, s.last_error, out, tb)


def transfer(s):
    if s.live:
        return (_PH_RECEIVING, s.t_wire, s.wire_len, s.t_len)
    if s.tslot != _NO_SLOT:
        return (_PH_RECEIVING, s.wire_off, s.wire_len, s.slot[s.tslot][4])
    other = s.slot[1 - s.active]
    act = s.slot[s.active]
    if other[0] == _SLOT_VERIFIED:
        return (_PH_VERIFIED, 0, 0, other[4])
    if other[0] == _SLOT_PENDING:
        return (_PH_ACTIVATED, 0, 0, other[4])
    if act[0] == _SLOT_TRIAL:
        return (_PH_TRIAL, 0, 0, act[4])
    if s.confirmed_now:
        return (_PH_CONFIRMED, 0, 0, act[4])
    return (_PH_IDLE, 0, 0, 0)


# ---- transfer ---------------------------------------------------------------------------
def begin(s, instr_hash, image_len, sha256, wire_len, compression, version, release_counter,
          kind, progress=None):  # fmt: skip
    if image_len > s.slot_size or image_len <= 0:
        raise DeviceError(_E_IMAGE_TOO_LARGE, s.slot_size)
    if release_counter <= s.release_floor:
        raise DeviceError(_E_ROLLBACK, s.release_floor)
    if compression != _COMP_NONE and (
        (compression != _COMP_DEFLATE and compression != _COMP_DEFLATE_SEG) or not s.wbits
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
    if s.live:
        if instr_hash == s.instr_hash:
            return s.t_wire  # same transfer after link loss: resume from RAM
        # a different instruction replaces a stale transfer (the session answers E_BUSY
        # itself while its transfer session is active)
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
            s.confirmed_now = False
            s.commit()
        reg = s.regions[tgt]
        es = s.es
        first = d // es
        last = (image_len + es - 1) // es
        for i in range(first, last):
            reg.erase(i)
            if progress:
                progress(i + 1 - first, last - first)
        _setup(s, tgt, image_len)
        buf = s.cbuf
        for a in range(0, d, s.chunk):
            reg.read(a, buf)
            s.sha.update(buf)
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
    if s.comp == _COMP_DEFLATE:
        import deflate

        s.dio = deflate.DeflateIO(ring, deflate.RAW, s.wbits)
    s.live = 1


def finish(s):
    # Read back the whole slot and compare sha256 and length; VERIFIED on success.
    if not s.live:
        return _E_BAD_STATE
    code = _OK
    try:
        if s.live == 1:
            if s.t_wire != s.wire_len:
                return _E_WIRE_LENGTH
            try:
                s._drain(True)
                if s.dio is not None and s.t_img == s.t_len:
                    # the stream must end here: no trailing output
                    if s.dio.readinto(s.cbuf, 1):
                        code = _E_LENGTH_MISMATCH
            except DeviceError as e:
                code = e.code
            except (OSError, EOFError, ValueError):
                code = _E_DECOMPRESS
            if code == _OK and s.t_img != s.t_len:
                code = _E_LENGTH_MISMATCH
            if code == _OK and s.comp == _COMP_DEFLATE_SEG:
                if s.w_cons != s.wire_len or s.seg_left >= 0:
                    code = _E_DECOMPRESS  # bytes after the last segment, or a cut one
            if code == _OK and s.sha.digest() != s.slot[s.t_slot][5]:
                code = _E_HASH_MISMATCH
        if code == _OK and not _mod("decide")._hash_ok(s, s.t_slot):
            code = _E_HASH_MISMATCH
        s.slot[s.t_slot][0] = _SLOT_VERIFIED if code == _OK else _SLOT_EMPTY
        s.tslot = _NO_SLOT
        s.wire_off = 0
        s.image_off = 0
        s.live = 0
        s.dio = None
        s.commit()
    except OSError:
        s.live = 0
        return _E_FLASH
    return code


# ---- activation, confirm, revert, abort --------------------------------------------------
def activate(s):
    tgt = 1 - s.active
    v = s.slot[tgt]
    if s.live or v[0] != _SLOT_VERIFIED:
        return _E_NO_IMAGE
    if v[3] <= s.release_floor:
        return _E_ROLLBACK
    v[0] = _SLOT_PENDING
    v[2] = 0
    _commit(s)
    if s.hooks:
        s.hooks.activated(tgt)
    return _OK


def confirm(s):
    v = s.slot[s.active]
    if v[0] == _SLOT_CONFIRMED:
        return _OK
    if v[0] != _SLOT_TRIAL:
        return _E_NO_IMAGE
    if not s.flags & _FLAG_TRIAL_OK:
        return _E_SELFTEST
    v[0] = _SLOT_CONFIRMED
    if v[3] > s.release_floor:
        s.release_floor = v[3]
    s.boot_state = _BOOT_NORMAL
    s.last_error = _OK
    _commit(s)
    s.confirmed_now = True
    if s.hooks:
        s.hooks.confirmed(s.active)
    return _OK


def revert(s):
    # Host-requested: cancel a pending activation, or leave a trial slot for the confirmed one
    # (takes effect at the next boot; the session reboots).
    o = s.slot[1 - s.active]
    if o[0] == _SLOT_PENDING:
        o[0] = _SLOT_REJECTED
        _commit(s)
        if s.hooks:
            s.hooks.reverted(s.active)
        return _OK
    if s.slot[s.active][0] == _SLOT_TRIAL and o[0] == _SLOT_CONFIRMED:
        _mod("decide")._revert_trial(s, _E_ABORTED)
        return _OK
    return _E_NO_IMAGE


def park(s):
    # Forget the transfer's RAM state (decoder, running hash), keep its durable record: as after
    # a reset, begin() of the same instruction then resumes from the last checkpoint. The session
    # frees this room before it verifies another instruction.
    s.live = 0
    s.dio = None
    s.sha = None
    return _OK


def abort(s):
    # drop the transfer in progress (or a verified, not yet activated image)
    v = s.slot[1 - s.active]
    s.live = 0
    s.dio = None
    if s.tslot != _NO_SLOT or v[0] == _SLOT_RECEIVING or v[0] == _SLOT_VERIFIED:
        v[0] = _SLOT_EMPTY
        s.tslot = _NO_SLOT
        s.wire_off = 0
        s.image_off = 0
        _commit(s)
    return _OK
