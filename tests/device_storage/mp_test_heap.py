# The storage side keeps only its DATA path loaded (device/slots.py "Heap"): every other
# operation's module is loaded for the call and gone again afterwards, protocol/codes.py is never
# loaded, and a cycle of operations leaves the live heap where it was (run by tests/mpyrun.py; this
# file itself imports nothing of protocol/ for the same reason).
# mpy-heapsize: 512k
import gc
import hashlib
import os
import sys

from otalink.device.flash import NorFlash
from otalink.device.slots import Slots

PER_CALL = (
    "otalink.device.slotops",
    "otalink.device.decide",
    "otalink.device.store",
    "otalink.device.flashcfg",
)
GEOM = {
    "size": 131072,
    "erase_size": 4096,
    "write_size": 4,
    "state_offset": 0,
    "state_sectors": 2,
    "slot_size": 57344,
    "slot_offsets": [8192, 65536],
}
IMG = bytes((i * 13 + (i >> 7)) & 0xFF for i in range(20000))


def _cycle(s, rc):
    # what a session does in one update, minus activation: every per-call module gets loaded
    sha = hashlib.sha256(IMG).digest()
    s.note_time(rc)
    off = s.begin(hashlib.sha256(bytes([rc])).digest(), len(IMG), sha, len(IMG), 0, "v", rc, 0)
    mv = memoryview(IMG)
    while off < len(IMG):
        off = s.write(off, mv[off : off + 4096])
    assert s.transfer()[0] == 1  # PH_RECEIVING
    assert s.finish() == 0
    assert s.report()[3][1][0] == 2  # SLOT_VERIFIED
    assert s.caps()[1] == GEOM["slot_size"]
    assert s.abort() == 0


def test_operations_leave_no_code_loaded():
    path = "/tmp/otalink-mpheap-" + "".join(f"{b:02x}" for b in os.urandom(6)) + ".bin"
    f = NorFlash(path, GEOM["size"], GEOM["erase_size"], GEOM["write_size"])
    try:
        s = Slots(f, GEOM)
        s.boot()
        _cycle(s, 1)
        gc.collect()
        base = gc.mem_alloc()
        _cycle(s, 2)
        gc.collect()
        grown = gc.mem_alloc() - base
        assert [m for m in PER_CALL if m in sys.modules] == []
        assert "otalink.protocol.codes" not in sys.modules
        # slotops.py alone is ~3.5 KB of code: none of it may stay behind
        assert grown < 512, grown
        try:
            s.no_such_operation  # noqa: B018
        except AttributeError:
            pass
        else:
            raise AssertionError("unknown names are not operations")
    finally:
        f.close()
        os.remove(path)
