# MicroPython tests of the Slots API: resume, replacement, busy/rollback refusals, host revert,
# confirm rules, trusted time (run by tests/mpyrun.py).
# mpy-heapsize: 2m
import hashlib
import os

from otalink.device.errors import DeviceError
from otalink.device.flash import NorFlash
from otalink.device.slots import Slots
from otalink.protocol import codes as C
from stored_deflate import stored_deflate

# boot() actions: decide.py's private _A_RUN / _A_START_TRIAL (tests/device_storage/test_consts.py
# checks these copies)
A_RUN = 0
A_START_TRIAL = 1

GEOM = {
    "size": 131072,
    "erase_size": 4096,
    "write_size": 256,
    "state_offset": 0,
    "state_sectors": 2,
    "slot_size": 57344,
    "slot_offsets": [8192, 65536],
    "max_data": 2048,
    "trial_boots": 2,
}


class Dev:
    def __init__(self):
        self.path = "/tmp/otalink-mpslots-" + "".join(f"{b:02x}" for b in os.urandom(6)) + ".bin"
        self.f = NorFlash(self.path, GEOM["size"], 4096, 256)

    def slots(self):
        return Slots(self.f, GEOM)

    def reboot(self):
        # power off/on: a new emulator on the same file, nothing kept in RAM
        self.f.close()
        self.f = NorFlash(self.path, GEOM["size"], 4096, 256)
        s = self.slots()
        return s, s.boot()

    def done(self):
        self.f.close()
        os.remove(self.path)


def img(seed, n):
    return bytes(((i * seed) >> 3) & 0xFF for i in range(n))


def meta(data, version, rc):
    sha = hashlib.sha256(data).digest()
    return (hashlib.sha256(version.encode()).digest(), len(data), sha, len(data), 0, version, rc, 0)


def send(s, data, off, end=None):
    mv = memoryview(data)
    end = len(data) if end is None else end
    while off < end:
        off = s.write(off, mv[off : min(off + 1500, end)])
    return off


def err(fn, *a):
    try:
        fn(*a)
    except DeviceError as e:
        return e.code
    return None


def install(dev, data, version, rc):
    s = dev.slots()
    s.boot()
    assert s.begin(*meta(data, version, rc)) == 0
    send(s, data, 0)
    assert s.finish() == C.OK
    assert s.activate() == C.OK
    s, d = dev.reboot()
    assert d[1] == A_START_TRIAL
    s.trial_passed()
    assert s.confirm() == C.OK
    return s


def test_resume_in_process_after_link_loss():
    dev = Dev()
    try:
        data = img(3, 20000)
        s = dev.slots()
        s.boot()
        m = meta(data, "1", 1)
        s.begin(*m)
        off = send(s, data, 0, 9000)
        assert s.transfer()[:2] == (C.PH_RECEIVING, off)
        assert s.begin(*m) == off  # nothing acknowledged is sent again
        send(s, data, off)
        assert s.finish() == C.OK
    finally:
        dev.done()


def test_resume_after_reboot_from_durable_offset():
    dev = Dev()
    try:
        data = img(5, 30000)
        s = dev.slots()
        s.boot()
        m = meta(data, "1", 1)
        s.begin(*m)
        send(s, data, 0, 13000)
        s, _ = dev.reboot()
        ph, durable, wl, il = s.transfer()
        assert ph == C.PH_RECEIVING and durable == 12288 and (wl, il) == (30000, 30000)
        assert s.begin(*m) == durable  # the running hash is rebuilt from flash
        send(s, data, durable)
        assert s.finish() == C.OK
        assert s.report()[3][1][0] == C.SLOT_VERIFIED
    finally:
        dev.done()


def test_other_instruction_replaces_a_stale_transfer():
    dev = Dev()
    try:
        a = img(7, 9000)
        b = img(9, 7000)
        s = dev.slots()
        s.boot()
        s.begin(*meta(a, "a", 1))
        send(s, a, 0, 4000)
        assert s.begin(*meta(b, "b", 1)) == 0
        send(s, b, 0)
        assert s.finish() == C.OK
        assert s.report()[3][1][1] == "b"
    finally:
        dev.done()


def test_busy_during_trial_and_rollback_refused():
    dev = Dev()
    try:
        install(dev, img(3, 5000), "1", 5)
        v2 = img(4, 6000)
        s = dev.slots()
        s.boot()
        assert err(s.begin, *meta(v2, "2", 5)) == C.E_ROLLBACK  # equal release counter
        assert err(s.begin, *meta(v2, "2", 4)) == C.E_ROLLBACK  # lower
        s.begin(*meta(v2, "2", 6))
        send(s, v2, 0)
        assert s.finish() == C.OK
        assert s.activate() == C.OK
        assert err(s.begin, *meta(img(5, 100), "3", 7)) == C.E_BUSY  # activation pending
        s, d = dev.reboot()
        assert d[1] == A_START_TRIAL
        assert err(s.begin, *meta(img(5, 100), "3", 7)) == C.E_BUSY  # fallback in use
        assert s.confirm() == C.E_SELFTEST  # self-test not passed in this boot
        s.trial_passed()
        assert s.confirm() == C.OK and s.release_floor == 6
    finally:
        dev.done()


def test_host_revert_of_trial():
    dev = Dev()
    try:
        install(dev, img(3, 5000), "1", 1)
        s = dev.slots()
        s.boot()
        v2 = img(6, 5000)
        s.begin(*meta(v2, "2", 2))
        send(s, v2, 0)
        s.finish()
        s.activate()
        s, d = dev.reboot()
        new = d[0]
        assert s.revert() == C.OK
        s, d = dev.reboot()
        assert d[1] == A_RUN and d[0] != new
        active, boot_state, last_error, slots, _trial_boots = s.report()
        assert (boot_state, last_error) == (C.BOOT_REVERTED, C.E_ABORTED)
        assert slots[new][0] == C.SLOT_REJECTED and slots[active][1] == "1"
        assert s.release_floor == 1
    finally:
        dev.done()


def test_trial_exhausted_reverts_with_reason():
    dev = Dev()
    try:
        install(dev, img(3, 5000), "1", 1)
        s = dev.slots()
        s.boot()
        v2 = img(8, 5000)
        s.begin(*meta(v2, "2", 2))
        send(s, v2, 0)
        s.finish()
        s.activate()
        s, d = dev.reboot()  # boot 1 of the trial: self-test passes, no confirm
        s.trial_passed()
        s, d = dev.reboot()  # boot 2: crashes before its self-test (nothing reported)
        assert s.report()[4] == 2
        s, d = dev.reboot()  # N = 2 boots used: revert
        assert d[1] == A_RUN and d[2] == C.E_BOOT_CRASH
        r = s.report()
        assert (r[1], r[2], r[4]) == (C.BOOT_REVERTED, C.E_BOOT_CRASH, 2)
    finally:
        dev.done()


def test_corrupted_pending_image_is_rejected_at_boot():
    dev = Dev()
    try:
        install(dev, img(3, 5000), "1", 1)
        s = dev.slots()
        s.boot()
        v2 = img(10, 5000)
        s.begin(*meta(v2, "2", 2))
        send(s, v2, 0)
        s.finish()
        s.activate()
        tgt = 1 - s.active
        s.regions[tgt].program(4096, bytes(256))  # bits cleared behind the agent's back
        s, d = dev.reboot()
        assert d[0] != tgt and d[1] == A_RUN
        assert s.report()[3][tgt][0] == C.SLOT_REJECTED
        assert s.report()[2] == C.E_HASH_MISMATCH
    finally:
        dev.done()


def test_trusted_time_only_moves_forward():
    dev = Dev()
    try:
        s = dev.slots()
        s.note_time(1000)
        s.note_time(900)
        s, _ = dev.reboot()
        assert s.trusted_time == 1000
    finally:
        dev.done()


def test_same_instruction_other_stream_starts_over():
    # Defect: begin() of the live instruction with another compression / wire_len resumed the old
    # stream's offset (ACK past the new stream's end, E_WIRE_LENGTH at every END). Another stream
    # of the same image starts at 0, in this process and after a reboot.
    dev = Dev()
    try:
        data = img(11, 20000)
        wire = stored_deflate(data)
        plain = meta(data, "1", 1)
        packed = list(plain)
        packed[3] = len(wire)  # wire_len
        packed[4] = C.COMP_DEFLATE
        s = dev.slots()
        s.boot()
        assert s.begin(*plain) == 0
        assert send(s, data, 0, 9000) == 9000
        assert s.begin(*packed) == 0  # not 9000: another stream
        assert s.transfer()[:3] == (C.PH_RECEIVING, 0, len(wire))
        assert send(s, wire, 0) == len(wire)
        assert s.finish() == C.OK
        assert s.report()[3][1][0] == C.SLOT_VERIFIED
        # durable: a reboot mid-stream, then the other stream again
        s.abort()
        assert s.begin(*packed) == 0
        send(s, wire, 0, 15000)
        s, _ = dev.reboot()
        assert s.transfer()[2] == len(wire)
        assert s.begin(*plain) == 0
        assert send(s, data, 0) == len(data)
        assert s.finish() == C.OK
    finally:
        dev.done()


def test_program_unit_is_one_page_unless_set():
    # The default program unit is one 256-byte NOR page (or the write size, if larger): it sits
    # beside the deflate decoder at the first DATA, where the update alone at 64k had no room
    # for a 1 KiB one (bench: heap_limit_bytes). A geometry's program_size still wins.
    d = Dev()
    try:
        for ws, want in ((4, 256), (256, 256), (1024, 1024)):
            s = Slots(d.f, dict(GEOM, write_size=ws))
            assert s.chunk == want and len(s.cbuf) == want, (ws, s.chunk)
        s = Slots(d.f, dict(GEOM, write_size=4, program_size=1024))
        assert s.chunk == 1024 and len(s.cbuf) == 1024, s.chunk
    finally:
        d.done()
