# Storage figures for bench/bench_device.py: cost of Slots.write per KiB of DATA (flash emulation
# included) and the heap the storage path needs. Run on the unix port:
#   micropython -X heapsize=64k -m otalink.device.slotbench FLASH.bin [KIB] [WIRE.bin SHA_HEX
#       IMAGE_LEN COMP]
# prints one JSON line: {"us_per_kib", "us_per_image_kib", "finish_ms", "erase_ms",
#   "code_heap_bytes", "heap_slots_bytes", "heap_steady_alloc_bytes", "peak_live_bytes",
#   "peak_heap_bytes", "ring_bytes", "image_bytes", "wire_bytes", "comp", "chunk"}:
#   code_heap_bytes   storage modules the serving agent keeps loaded (errors, flash, slots), after
#                     gc (protocol/codes.py is not among them any more);
#   startup_residue_bytes  what the per-call modules (decide, flashcfg, store, slotops) leave in
#                     the heap once dropped: their interned names (qstrs; possibly a new qstr pool);
#   heap_slots_bytes  storage data after BEGIN and the first DATA: NorFlash + Slots (ring, program
#                     unit, state record buffers, hash / deflate state);
#   peak_live_bytes   highest live heap (after gc) sampled at each step, whole process;
#   peak_heap_bytes   micropython.mem_peak() (garbage included).
# `make bench-slots` also runs it down a ladder of -X heapsize values and prints the smallest that
# completes.
# Without WIRE a deterministic uncompressed image of KIB KiB (default 256) is written to
# FLASH.bin.wire first (MicroPython's deflate cannot compress: pass a raw-deflate WIRE file made on
# the host for comp=1). DATA is read from the file into one preallocated buffer, as frames would be.
import gc
import hashlib
import json
import sys
import time

import micropython
from micropython import const

_OK = const(0)  # protocol/codes.py (private copies, checked by tests/protocol/test_wire.py)
_COMP_NONE = const(0)

# measured imports: the storage modules the serving agent keeps
gc.collect()
_A1 = gc.mem_alloc()
from otalink.device import errors  # noqa: E402, F401
from otalink.device.flash import NorFlash  # noqa: E402
from otalink.device.slots import Slots  # noqa: E402

gc.collect()
_A2 = gc.mem_alloc()
# per-call modules (Slots loads and drops them): what they leave behind is their interned names
# (qstrs, possibly a new qstr pool), reported on its own so heap_slots_bytes is data only
from otalink.device import decide, flashcfg, slotops, store  # noqa: E402, F401

del decide, flashcfg, slotops, store
for _m in ("decide", "flashcfg", "slotops", "store"):
    sys.modules.pop("otalink.device." + _m, None)
    delattr(sys.modules["otalink.device"], _m)
gc.collect()
_A3 = gc.mem_alloc()
_live = [_A3]


def _sample():
    gc.collect()
    a = gc.mem_alloc()
    if a > _live[0]:
        _live[0] = a
    return a


def _peak():
    try:
        return micropython.mem_peak()
    except AttributeError:
        return -1


def make_wire(path, kib):
    # a deterministic uncompressed image written in chunks (fits any heap); returns its sha256
    h = hashlib.sha256()
    buf = bytearray(1024)
    with open(path, "wb") as fo:
        for k in range(kib):
            for i in range(0, 1024, 64):  # setup only, not measured
                buf[i] = k & 0xFF
                buf[i + 1] = i >> 6
            h.update(buf)
            fo.write(buf)
    return h.digest()


def run(path, wire_path, image_len, sha, comp=_COMP_NONE, step=4000, geom=None):
    base = _sample()
    g = {"size": 1048576, "erase_size": 4096, "write_size": 256}  # flashcfg.DEFAULTS
    if geom:
        g.update(geom)
    f = NorFlash(path, g["size"], g["erase_size"], g["write_size"])
    s = Slots(f, g)
    _sample()
    s.boot()
    _sample()
    fw = open(wire_path, "rb")
    n = fw.seek(0, 2)
    fw.seek(0)
    buf = bytearray(step)  # stands for the session's frame buffer
    mv = memoryview(buf)
    # the ring is made in Slots(), the deflate state in begin(): counted in heap_slots_bytes
    t0 = time.ticks_us()
    rc = 1 + s.release_floor
    s.begin(hashlib.sha256(b"bench").digest(), image_len, sha, n, comp, "bench", rc, 0)
    erase_us = time.ticks_diff(time.ticks_us(), t0)
    # first DATA outside the measurement: lazily made buffers (emulator scratch, deflate state)
    k = fw.readinto(buf)
    off = s.write(0, mv if k == step else mv[:k])
    heap_slots = _sample() - base - step  # the frame buffer stands for the session's
    a0 = gc.mem_alloc()
    t0 = time.ticks_us()
    first = off
    while off < n:
        k = fw.readinto(buf)
        off = s.write(off, mv if k == step else mv[:k])
    dt = time.ticks_diff(time.ticks_us(), t0)
    steady = gc.mem_alloc() - a0
    fw.close()
    _sample()
    t0 = time.ticks_us()
    code = s.finish()
    fin = time.ticks_diff(time.ticks_us(), t0)
    _sample()
    f.close()
    if code != _OK:
        raise RuntimeError("finish failed: %d" % code)
    ring = 0  # the input ring's capacity: fill it (after the run; it is empty now)
    b = bytes(64)
    while True:
        k = s.ring.write(b)
        ring += k
        if k < 64:
            break
    return {
        "us_per_kib": dt * 1024 / (n - first),  # per KiB of DATA (wire bytes)
        "us_per_image_kib": dt * 1024 * n / (n - first) / image_len,
        "erase_ms": erase_us / 1000,
        "finish_ms": fin / 1000,
        "code_heap_bytes": _A2 - _A1,
        "startup_residue_bytes": _A3 - _A2,
        "heap_slots_bytes": heap_slots,
        "ring_bytes": ring,
        "heap_steady_alloc_bytes": steady,
        "peak_live_bytes": _live[0],
        "peak_heap_bytes": _peak(),
        "image_bytes": image_len,
        "wire_bytes": n,
        "comp": comp,
        "chunk": s.chunk,
    }


def main(argv):
    path = argv[1]
    if len(argv) > 6:
        r = run(path, argv[3], int(argv[5]), bytes.fromhex(argv[4]), int(argv[6]))
    else:
        kib = int(argv[2]) if len(argv) > 2 else 256
        wire = path + ".wire"
        sha = make_wire(wire, kib)
        r = run(path, wire, kib * 1024, sha)
    print(json.dumps(r))


if __name__ == "__main__":
    main(sys.argv)
