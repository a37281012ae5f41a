# Start-up-only storage code, imported by Slots for one call and dropped again (slots._drop) so
# the agent's steady-state heap holds none of it:
#   boot(slots) -> (slot, action, reason)   the boot decision table (BOOT_TABLE) applied
#   resume(slots, tgt, image_len, wire_len, compression, progress) -> wire offset to resume from
# `self` below is the Slots instance (these were its methods; the names inside are unchanged).
from micropython import const
from otalink.device.slots import COMP_DEFLATE_SEG
from otalink.device.store import FLAG_TRIAL_OK
from otalink.protocol import codes as C

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
            if not _cond(self, row[2], a, o, hashes):
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


def resume(self, tgt, image_len, wire_len, compression, progress):
    # After a reboot: rebuild the running hash from flash up to the durable image offset, erase
    # what may have been programmed after it, continue at the durable wire offset. Uncompressed:
    # both offsets are equal (a checkpoint every erase sector). Deflate segments: a checkpoint
    # at every segment end on a sector boundary. Plain deflate restarts at 0: the decompressor's
    # state died with the process.
    st = self.store
    d = w = 0
    if compression == C.COMP_NONE:
        d = w = st.image_off
    elif compression == COMP_DEFLATE_SEG:
        d = st.image_off
        w = st.wire_off
    self._erase(tgt, d, image_len, progress)
    self._setup(tgt, image_len, wire_len, compression)
    reg = self.regions[tgt]
    sha = self.sha
    buf = self.cbuf
    for a in range(0, d, self.chunk):
        reg.read(a, buf)
        sha.update(buf)
    self.t_wire = w
    self.w_cons = w
    self.t_img = d
    return w
