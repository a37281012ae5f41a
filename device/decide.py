# Start-up storage operations of Slots, loaded per call by Slots.__getattr__ (slots.py) and
# dropped again (flash._mod), so the serving agent's heap holds none of this code:
#   boot() -> (slot, action, reason)   the boot decision table (BOOT_TABLE) applied
#   trial_passed()   trial_failed(code)   the boot sequence reports the bundle's self-test (or
#                    the application reports healthy / not healthy: agent.healthy())
#   note_fault(code)   record a fault of the running image (fault u8 of the state record)
#   note_wdt()         count a watchdog reset of a trial image (wdt_trips u8), before boot()
# and the two helpers slotops.py borrows for its rarer operations: _hash_ok (read a slot back and
# compare its sha256: finish) and _revert_trial (host REVERT of a trial). `s` is the Slots object.
# Actions are private consts here (no names interned): boot() returns them as integers, and
# tests/device_storage/test_consts.py checks the copies the tests use.
import hashlib

from micropython import const
from otalink.protocol.errors import ProtocolError as DeviceError

# protocol/codes.py values used here (private copies, checked by tests/protocol/test_wire.py)
_OK = const(0)
_E_HASH_MISMATCH = const(37)
_E_BOOT_CRASH = const(51)
_E_NOT_CONFIRMED = const(52)
_E_WATCHDOG = const(53)
_SLOT_PENDING = const(3)
_SLOT_TRIAL = const(4)
_SLOT_CONFIRMED = const(5)
_SLOT_REJECTED = const(6)
_E_FLASH = const(40)
_BOOT_TRIAL = const(1)
_BOOT_REVERTED = const(2)
_FLAG_TRIAL_OK = const(1)  # store.py: flags bit 0

# boot decision table --------------------------------------------------------------------
# actions
_A_RUN = const(0)  # run the active slot (confirmed)
_A_START_TRIAL = const(1)  # the other slot was activated: make it active, on trial (boot 1)
_A_CONTINUE_TRIAL = const(2)  # active slot still on trial: count this boot
_A_REVERT = const(3)  # give up the trial slot: reject it, fall back to the other slot
_A_REJECT_OTHER = const(4)  # the pending slot fails its hash: reject it
_A_SWITCH = const(5)  # active slot unusable, the other is confirmed: run the other
_A_NONE = const(6)  # nothing bootable: run the agent without an application
# conditions (evaluated lazily; hashing a slot reads it back)
_K_ANY = const(0)
_K_OTHER_OK = const(1)  # other slot's content matches its recorded sha256
_K_OTHER_BAD = const(2)
_K_EXHAUSTED_CRASHED = const(3)  # trial boots used up, last boot never passed the self-test
_K_EXHAUSTED = const(4)  # trial boots used up (self-test passed, never confirmed)
_K_ACTIVE_BAD = const(5)  # active slot's content does not match its recorded sha256
_K_ACTIVE_OK = const(6)
_K_EXHAUSTED_FAULT = const(7)  # trial boots used up, a fault was recorded (fault u8)
_K_EXHAUSTED_WDT = const(8)  # trial boots used up, the watchdog reset it (wdt_trips u8)
# reason column: "the recorded fault" (the state record's fault u8)
_R_FAULT = const(0xFF)
# slot-state masks (bit n = state n)
_ALL = const(0xFF)
_PENDING = const(1 << _SLOT_PENDING)
_TRIAL = const(1 << _SLOT_TRIAL)
_CONFIRMED = const(1 << _SLOT_CONFIRMED)
# (active slot states, other slot states, condition, action, reason). First matching row wins;
# REJECT_OTHER and REVERT change state without running anything and are followed by a new pass.
# docs/device.md "Boot decisions" is this table in prose; keep both in step.
BOOT_TABLE = (
    (_ALL, _PENDING, _K_OTHER_OK, _A_START_TRIAL, _OK),
    (_ALL, _PENDING, _K_OTHER_BAD, _A_REJECT_OTHER, _E_HASH_MISMATCH),
    (_TRIAL, _ALL, _K_EXHAUSTED_FAULT, _A_REVERT, _R_FAULT),
    (_TRIAL, _ALL, _K_EXHAUSTED_WDT, _A_REVERT, _E_WATCHDOG),
    (_TRIAL, _ALL, _K_EXHAUSTED_CRASHED, _A_REVERT, _E_BOOT_CRASH),
    (_TRIAL, _ALL, _K_EXHAUSTED, _A_REVERT, _E_NOT_CONFIRMED),
    (_TRIAL, _ALL, _K_ACTIVE_BAD, _A_REVERT, _E_HASH_MISMATCH),
    (_TRIAL, _ALL, _K_ANY, _A_CONTINUE_TRIAL, _OK),
    (_CONFIRMED, _ALL, _K_ACTIVE_OK, _A_RUN, _OK),
    (_ALL, _CONFIRMED, _K_OTHER_OK, _A_SWITCH, _OK),
    (_ALL, _ALL, _K_ANY, _A_NONE, _OK),
)


def boot(s):
    # Apply BOOT_TABLE until a row that runs something (RUN / CONTINUE_TRIAL / START_TRIAL /
    # SWITCH / NONE). Returns (slot to run or -1, action, reason of the last state change).
    s.live = 0
    if s.hooks:
        r = s.hooks.running()
        if r is not None and r != s.active and s.slot[r][0] != _SLOT_PENDING:
            # the bootloader chose another slot than ours (ESP32 rollback of an unconfirmed
            # firmware): the trial slot crashed; follow the bootloader
            if s.slot[s.active][0] == _SLOT_TRIAL:
                _revert_trial(s, _E_BOOT_CRASH)
            else:
                s.active = r
                _commit(s)
    hashes = [None, None]  # per slot: content matches its recorded sha256 (read back once)
    reason = _OK
    for _ in range(4):  # at most REJECT_OTHER / REVERT then a running row
        a = s.active
        o = 1 - a
        sa = s.slot[a]
        so = s.slot[o]
        for row in BOOT_TABLE:
            if not (row[0] >> sa[0]) & 1 or not (row[1] >> so[0]) & 1:
                continue
            k = row[2]
            if k == _K_OTHER_OK or k == _K_OTHER_BAD or k == _K_ACTIVE_OK or k == _K_ACTIVE_BAD:
                n = o if k <= _K_OTHER_BAD else a
                if hashes[n] is None:
                    hashes[n] = _hash_ok(s, n)
                if hashes[n] != (k == _K_OTHER_OK or k == _K_ACTIVE_OK):
                    continue
            elif k != _K_ANY:
                if sa[2] < s.trial_limit:
                    continue  # not exhausted
                if k == _K_EXHAUSTED_CRASHED and s.flags & _FLAG_TRIAL_OK:
                    continue
                if k == _K_EXHAUSTED_FAULT and not s.fault:
                    continue
                if k == _K_EXHAUSTED_WDT and not s.wdt_trips:
                    continue
            act = row[3]
            break
        why = s.fault if row[4] == _R_FAULT else row[4]
        if why != _OK:
            reason = why
        if act == _A_REJECT_OTHER:
            so[0] = _SLOT_REJECTED
            s.last_error = why
            _commit(s)
            continue
        if act == _A_REVERT:
            _revert_trial(s, why)
            continue
        if act == _A_START_TRIAL:
            s.active = o
            so[0] = _SLOT_TRIAL
            so[2] = 1
            s.flags &= ~_FLAG_TRIAL_OK
            s.boot_state = _BOOT_TRIAL
            s.last_error = _OK
            s.fault = 0
            s.wdt_trips = 0
            _commit(s)
            return (o, act, reason)
        if act == _A_CONTINUE_TRIAL:
            sa[2] += 1
            s.flags &= ~_FLAG_TRIAL_OK
            _commit(s)
            return (a, act, reason)
        if act == _A_SWITCH:
            s.active = o
            _commit(s)
            return (o, act, reason)
        if act == _A_RUN:
            return (a, act, reason)
        return (-1, _A_NONE, reason)
    return (-1, _A_NONE, reason)


def trial_passed(s):
    # the trial bundle imported and passed its self-test in this boot
    if s.slot[s.active][0] == _SLOT_TRIAL and not s.flags & _FLAG_TRIAL_OK:
        s.flags |= _FLAG_TRIAL_OK
        _commit(s)


def note_fault(s, code):
    # a fault of the running image (the application crashed, ran out of memory, failed at import;
    # the slot's agent failed at import; a receive probe failed): the reason a trial that runs
    # out of boots reverts with (BOOT_TABLE), and what INFO shows
    if s.fault != code:
        s.fault = code
        _commit(s)


def note_wdt(s):
    # the loader saw a watchdog reset and the active slot is on trial: count it (saturating);
    # boot() right after commits it with the boot count
    if s.slot[s.active][0] == _SLOT_TRIAL and s.wdt_trips < 255:
        s.wdt_trips += 1


def trial_failed(s, code):
    # the trial bundle raised on import (E_BOOT_CRASH) or failed its self-test (E_SELFTEST):
    # roll back now, without waiting for the boot count
    if s.slot[s.active][0] == _SLOT_TRIAL:
        _revert_trial(s, code)
        return True
    return False


def _commit(s):
    try:
        s.commit()
    except OSError as e:
        raise DeviceError(_E_FLASH, e.errno if hasattr(e, "errno") else 0)


def _revert_trial(s, reason):
    # leave the trial slot for the other one (the fallback): REJECTED, BOOT_REVERTED, reason
    s.slot[s.active][0] = _SLOT_REJECTED
    s.active = 1 - s.active
    s.boot_state = _BOOT_REVERTED
    s.last_error = reason
    s.flags &= ~_FLAG_TRIAL_OK
    s.fault = 0
    s.wdt_trips = 0
    _commit(s)
    if s.hooks:
        s.hooks.reverted(s.active)


def _hash_ok(s, slot):
    # read the recorded image length back from flash and compare with the recorded sha256
    from otalink.device.flash import _run

    return _run(_hash_g(s, slot))


def _hash_g(s, slot):
    # _hash_ok as a generator: yields every 16 KiB read (the agent's END beside an application)
    v = s.slot[slot]
    n = v[4]
    if n <= 0 or n > s.slot_size:
        return False
    reg = s.regions[slot]
    h = hashlib.sha256()
    buf = s.cbuf
    c = s.chunk
    full = n - n % c
    for a in range(0, full, c):
        reg.read(a, buf)
        h.update(buf)
        if not (a + c) & 0x3FFF:
            yield
    if full < n:
        reg.read(full, buf)
        h.update(memoryview(buf)[: n - full])
    return h.digest() == v[5]
