# The Slots operations off the DATA path, loaded per call by Slots.__getattr__ (slots.py) and
# dropped again (flash._mod), so the serving agent's heap holds none of this code: it is loaded
# for a BEGIN, an END, a report, an activation ... and freed when that call returns. `s` is the
# Slots object (these were its methods: the API is in slots.py). The start-up operations (boot,
# the trial reports) are in decide.py, which also lends finish() its read-back hash and revert()
# its trial rollback.

from micropython import const
from otalink.device.flash import _mod, _run
from otalink.protocol.errors import ProtocolError as DeviceError

# protocol/codes.py values used here (private copies, checked by tests/protocol/test_wire.py)
_OK = const(0)
_E_ROLLBACK = const(34)
_E_FLASH = const(40)
_E_NO_IMAGE = const(42)
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
    return _run(begin_g(s, instr_hash, image_len, sha256, wire_len, compression, version,
                        release_counter, kind, progress))  # fmt: skip


# The transfer's storage steps live in slotwrite.py (loaded with a transfer; the agent calls them
# there directly); these are the Slots API's names for them.
def begin_g(s, instr_hash, image_len, sha256, wire_len, compression, version, release_counter,
            kind, progress=None):  # fmt: skip
    return _mod("slotbegin").begin_g(s, instr_hash, image_len, sha256, wire_len, compression,
                                     version, release_counter, kind, progress)  # fmt: skip


def finish(s):
    # Read back the whole slot and compare sha256 and length; VERIFIED on success.
    return _run(finish_g(s))


def finish_g(s):
    return _mod("slotend").finish_g(s)


def probe(s, image_len, wire_len, compression):
    return _mod("slotbegin").probe(s, image_len, wire_len, compression)


def probe_end(s):
    return _mod("slotend").probe_end(s)


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
    s.fault = 0
    s.wdt_trips = 0
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
        # the reason: a fault recorded in this trial (a failed receive probe: E_PROBE_FAILED,
        # an application crash, ...), else the host's own decision
        _mod("decide")._revert_trial(s, s.fault or _E_ABORTED)
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
