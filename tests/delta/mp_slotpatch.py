# A patch transfer through Slots under MicroPython (run by tests/delta/test_slotpatch.py):
#   mp_slotpatch.py DIR
# DIR holds base.bin (installed and confirmed first as a full image), new.bin (the result), wire.bin
# (the patch as it crosses the line) and job.txt: one line per run,
#   "comp piece stop corrupt base_ok"  (stop: wire offset to power off at then resume from the
#   durable checkpoint, -1 = none; corrupt: wire offset whose byte is flipped, -1 = none; base_ok
#   0 = the instruction binds another base). Prints one line per run:
#   "RUN code resume_from slot_state sha_is_the_result peak_heap_alloc"
import gc
import hashlib
import os
import sys

from otalink.device.errors import DeviceError
from otalink.device.flash import NorFlash
from otalink.device.slots import Slots

GEOM = {
    "size": 1 << 20,
    "erase_size": 4096,
    "write_size": 256,
    "state_offset": 0,
    "state_sectors": 2,
    "slot_size": 446464,
    "slot_offsets": [8192, 454656],
    "trial_boots": 2,
}


def read(path):
    with open(path, "rb") as f:
        return f.read()


class Dev:
    def __init__(self, d):
        self.path = d + "/flash.bin"
        try:
            os.remove(self.path)
        except OSError:
            pass
        self.f = NorFlash(self.path, GEOM["size"], 4096, 256)

    def slots(self):
        return Slots(self.f, GEOM)

    def reboot(self):
        self.f.close()
        self.f = NorFlash(self.path, GEOM["size"], 4096, 256)
        s = self.slots()
        return s, s.boot()


def meta(data_len, sha, wire_len, comp, version, rc):
    return (hashlib.sha256(version).digest(), data_len, sha, wire_len, comp, version, rc, 0)


def send(s, wire, off, end, piece):
    mv = memoryview(wire)
    while off < end:
        off = s.write(off, mv[off : min(off + piece, end)])
    return off


def install_base(dev, base):
    s = dev.slots()
    s.boot()
    sha = hashlib.sha256(base).digest()
    s.begin(*meta(len(base), sha, len(base), 0, b"1", 1))
    send(s, base, 0, len(base), 2048)
    assert s.finish() == 0
    assert s.activate() == 0
    s, _ = dev.reboot()
    s.trial_passed()
    assert s.confirm() == 0
    return sha


def run(d, dev, base_sha, new, wire, comp, piece, stop, corrupt, base_ok):
    s = dev.slots()
    s.boot()
    if corrupt >= 0:
        wire = bytearray(wire)
        wire[corrupt] ^= 0x5A
    sha = hashlib.sha256(new).digest()
    m = meta(len(new), sha, len(wire), comp, b"2", 2)
    s.pbase = base_sha if base_ok else bytes(32)
    resume = -1
    gc.collect()
    peak = 0
    try:
        s.begin(*m)
        if stop >= 0:
            send(s, wire, 0, stop, piece)
            s, _ = dev.reboot()
            s.pbase = base_sha
            resume = s.begin(*m)
            off = resume
        else:
            off = 0
        while off < len(wire):
            off = send(s, wire, off, min(off + 16384, len(wire)), piece)
            peak = max(peak, gc.mem_alloc())
        code = s.finish()
    except DeviceError as e:
        code = e.code
        if code >= 44:
            s.abort()
    v = s.slot[1 - s.active]
    print("RUN", code, resume, v[0], 1 if v[5] == sha else 0, peak)


def main():
    d = sys.argv[1]
    base = read(d + "/base.bin")
    new = read(d + "/new.bin")
    wire = read(d + "/wire.bin")
    for line in read(d + "/job.txt").decode().split("\n"):
        if not line.strip():
            continue
        comp, piece, stop, corrupt, base_ok = (int(x) for x in line.split())
        dev = Dev(d)
        base_sha = install_base(dev, base)
        run(d, dev, base_sha, new, wire, comp, piece, stop, corrupt, base_ok)
        dev.f.close()
    print("SLOTPATCH-OK")


main()
