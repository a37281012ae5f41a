# Harness of device/delta.py, the same file for both runtimes:
#   micropython mp_delta.py apply BATCH OUT [native]   (tests/delta/pairs.py writes BATCH)
#   micropython mp_delta.py ck BATCH OUT [native]
#   micropython mp_delta.py heap BASE PATCH TO_LEN SHA_HEX UNIT PIECE VARIANT  (run_heap)
# and on CPython `import tests.delta.mp_delta` (run_batch / run_ck with a RAM region: the flash
# emulator needs MicroPython). Under MicroPython the base image is programmed into slot A of the
# real NOR emulator (device/flash.py) and read through a Region, as on the ECU.
#
# BATCH: per case "<4sIIIIII" (b"DLT1", id, base_len, patch_len, to_len, mode, seed), base bytes,
# patch bytes. mode: how the patch is fed: 0 whole, 1 byte by byte, 2 random pieces (1..3000),
# 3 DATA-like (pieces of 2038 copied into a frame buffer at offset 6), 4 random pieces (1..40).
# OUT (apply): per case "<IiII" (id, code, out_len, unit) then out_len result bytes; code 0 ok,
# 45 E_PATCH raised, -1 another exception (its repr goes to stdout), -2 put() beyond to_len.
# OUT (ck): the full result of every case and one JSON line per case on stdout.
# (otalink.device.delta is imported where it is used: the heap run measures its import.)
import binascii
import gc
import hashlib
import struct
import sys

MP = sys.implementation.name == "micropython"
HDR = "<4sIIIIII"
HDR_LEN = 28
RES = "<IiII"
E_PATCH = 45
SLOT = 1 << 20  # base slot size (the emulator's file is two of them)


class RamRegion:
    # CPython stand-in for flash.Region (flash.py loads MicroPython-only helpers): read/size
    def __init__(self, size):
        self.b = bytearray(size)
        self.size = size
        self.es = 4096

    def load(self, data):
        self.b[: len(data)] = data

    def read(self, addr, buf):
        # (not every board's readblocks() reads across an erase sector: the applier never asks)
        if addr % self.es + len(buf) > self.es or addr + len(buf) > self.size:
            raise AssertionError("read across a sector or beyond the region")
        buf[:] = self.b[addr : addr + len(buf)]


class FlashBase:
    # the base image in slot A of the NOR emulator; the result's slot B for the heap run
    def __init__(self, path):
        from otalink.device.flash import NorFlash, Region

        self.f = NorFlash(path, 2 * SLOT, 4096, 256, -1, False, "raise")
        self.a = Region(self.f, 0, SLOT, 4096)
        self.b = Region(self.f, SLOT, SLOT, 4096)
        self.size = SLOT

    def load(self, data, reg=None):
        reg = reg or self.a
        n = (len(data) + 255) // 256 * 256
        for s in range((n + 4095) // 4096):
            reg.erase(s)
        mv = memoryview(data)
        page = bytearray(256)
        for a in range(0, n, 256):
            k = min(256, len(data) - a)
            if k == 256:
                reg.program(a, mv[a : a + 256])
            else:
                for i in range(256):
                    page[i] = data[a + i] if i < k else 0xFF
                reg.program(a, page)


class Lcg:
    # the same pseudo-random piece sizes on both runtimes
    def __init__(self, seed):
        self.x = seed & 0x7FFFFFFF

    def next(self, lo, hi):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return lo + (self.x >> 8) % (hi - lo + 1)


def pieces(patch, mode, seed):
    # (buffer, start, n) triples that cover the patch in order, as mode says
    n = len(patch)
    mv = memoryview(patch)
    if mode == 0:
        yield mv, 0, n
        return
    rnd = Lcg(seed)
    frame = bytearray(2048)
    p = 0
    while p < n:
        if mode == 1:
            k = 1
        elif mode == 2:
            k = rnd.next(1, 3000)
        elif mode == 3:
            k = 2038
        else:
            k = rnd.next(1, 40)
        if k > n - p:
            k = n - p
        if mode == 3:
            frame[6 : 6 + k] = mv[p : p + k]
            yield frame, 6, k
        else:
            yield mv, p, k
        p += k


class Sink:
    # put(): collects the result, checks that nothing goes beyond to_len or the unit
    def __init__(self, out, to_len):
        self.out = out
        self.to_len = to_len
        self.data = bytearray()
        self.bad = False

    def put(self, k):
        if k < 1 or k > len(self.out) or len(self.data) + k > self.to_len:
            self.bad = True
            raise AssertionError("put beyond the result")
        self.data.extend(memoryview(self.out)[:k])


def apply_one(reg, base_len, patch, to_len, mode, seed, unit, native):
    from otalink.device.delta import Patcher
    from otalink.device.errors import DeviceError

    # -> (code, result bytes). The unit buffer is a view into a larger buffer whose guard bytes
    # must stay untouched (the native loops do no bounds checks of their own).
    guard = bytearray(unit + 64)
    for i in range(len(guard)):
        guard[i] = 0xA5
    out = memoryview(guard)[32 : 32 + unit]
    sink = Sink(out, to_len)
    try:
        p = Patcher(reg, base_len, to_len, out, sink.put, 256, native)
        for buf, s, k in pieces(patch, mode, seed):
            p.feed(buf, s, k)
        p.finish()
        code = 0
    except DeviceError as e:
        code = e.code if e.code == E_PATCH else -1
        if code < 0:
            print("other DeviceError", e.code, e.detail)
    except Exception as e:  # the harness reports any other exception
        code = -2 if sink.bad else -1
        print("exception", repr(e))
    for i in range(32):
        if guard[i] != 0xA5 or guard[32 + unit + i] != 0xA5:
            code = -3
            print("guard bytes overwritten", i)
    return code, sink.data


def read_cases(path):
    with open(path, "rb") as f:
        while True:
            h = f.read(HDR_LEN)
            if len(h) < HDR_LEN:
                return
            magic, cid, blen, plen, tlen, mode, seed = struct.unpack(HDR, h)
            if magic != b"DLT1":
                raise ValueError("batch")
            yield cid, f.read(blen), f.read(plen), tlen, mode, seed


def _units(cid):
    # program unit sizes seen on boards (256 .. 4096) and small ones that cut records often
    return (16, 64, 256, 1024, 4096, 512)[cid % 6]


def _region(flash, base):
    if flash is None:
        reg = RamRegion(SLOT)
        reg.load(base)
        return reg
    flash.load(base)
    return flash.a


def run_batch(batch, out_path, native=True, flash=None):
    with open(out_path, "wb") as o:
        for cid, base, patch, tlen, mode, seed in read_cases(batch):
            unit = _units(cid)
            code, data = apply_one(_region(flash, base), len(base), patch, tlen, mode, seed, unit,
                                   native)  # fmt: skip
            o.write(struct.pack(RES, cid, code, len(data), unit))
            o.write(data)
            if MP:
                gc.collect()  # (the next case's base and patch need the room)


def ck_case(reg, base_len, patch, tlen, seed, unit, native):
    # Every checkpoint of a byte-by-byte run (after each byte where one is valid, and inside
    # every put()), each saved into a record and loaded into a fresh Patcher that is fed the
    # rest of the patch in pieces: the result must equal the uninterrupted run's.
    # -> (result, {"checkpoints", "states" (bit per state seen), "partial", "bad"})
    import struct

    from otalink.device.delta import Patcher

    CK_LEN = struct.calcsize("<IIIIB")  # delta._CK_LEN: a private const, not in the module

    out = bytearray(unit)
    sink = Sink(out, tlen)
    cks = []
    p = Patcher(reg, base_len, tlen, out, None, 256, native)

    def put(k):
        sink.put(k)
        rec = bytearray(CK_LEN + 3)
        try:
            p.save(rec, 3)
        except ValueError:
            return  # the last, partial unit (finish()): not a checkpoint
        cks.append((bytes(rec), len(sink.data)))

    p.put = put
    mv = memoryview(patch)
    for i in range(len(patch)):
        try:
            rec = bytearray(CK_LEN)
            p.save(rec, 0)
            cks.append((bytes(rec), len(sink.data)))
        except ValueError:
            pass  # result bytes wait in the unit: no checkpoint here
        p.feed(mv, i, 1)
    p.finish()
    full = bytes(sink.data)
    bad = []
    kinds = 0
    partial = 0
    for n, (rec, done) in enumerate(cks):
        out2 = bytearray(unit)
        s2 = Sink(out2, tlen)
        s2.data.extend(full[:done])
        q = Patcher(reg, base_len, tlen, out2, s2.put, 256, native)
        q.load(rec, len(rec) - CK_LEN)
        ck = q.checkpoint()
        kinds |= 1 << (ck[4] & 15)
        if ck[4] & 0x70:
            partial += 1  # inside a size
        if ck[1] != done:
            bad.append(n)
            continue
        for buf, s, k in pieces(patch[ck[0] :], 2 if n % 2 else 4, seed + n):
            q.feed(buf, s, k)
        q.finish()
        if bytes(s2.data) != full:
            bad.append(n)
    return full, {"checkpoints": len(cks), "states": kinds, "partial": partial, "bad": bad}


def run_ck(batch, out_path, native=True, flash=None):
    import json

    with open(out_path, "wb") as o:
        for cid, base, patch, tlen, _mode, seed in read_cases(batch):
            unit = (1, 16, 48)[cid % 3]  # 1: a checkpoint after every byte
            full, info = ck_case(_region(flash, base), len(base), patch, tlen, seed, unit, native)
            info["id"] = cid
            o.write(full)
            print(json.dumps(info))


def _program_base(reg, path):
    # the base into slot A one sector at a time (never whole in RAM); -> its length
    sec = bytearray(4096)
    with open(path, "rb") as f:
        n = f.seek(0, 2)
        f.seek(0)
        a = 0
        while a < n:
            k = f.readinto(sec)
            for i in range(k, 4096):
                sec[i] = 0xFF
            reg.erase(a // 4096)
            reg.program(a, sec)
            a += 4096
    return n


def _live():
    # live heap: collected twice (the first pass may still see a stale pointer on the C stack)
    gc.collect()
    gc.collect()
    return gc.mem_alloc()


class Programmer:
    # put() as Slots does it: pad a short last unit, sha256, program at the image offset. A bound
    # method, like Slots._put (calling a closure over more than a few cells allocates on
    # MicroPython: its cells and arguments are copied into a heap array)
    def __init__(self, reg, cbuf, allocating):
        self.reg = reg
        self.cbuf = cbuf
        self.sha = hashlib.sha256()
        self.at = 0
        self.allocating = allocating

    def put(self, k):
        cbuf = self.cbuf
        if self.allocating:
            bytearray(k)  # (the negative test: an allocation per unit)
        if self.reg is None:  # the applier's own cost (bench): the result is only counted
            self.at += k
            return
        if k < len(cbuf):
            for i in range(k, len(cbuf)):
                cbuf[i] = 0xFF
            self.sha.update(memoryview(cbuf)[:k])
        else:
            self.sha.update(cbuf)
        self.reg.program(self.at, cbuf)
        self.at += k


def run_heap(base_path, patch_path, to_len, sha_hex, unit, piece, variant):
    # The module at a realistic program unit, the patch fed from a file in DATA-sized pieces,
    # the result programmed into slot B and hashed (what Slots does). After two warm-up pieces
    # the heap is locked: any allocation per piece raises MemoryError.
    import json
    import os
    import time

    import micropython

    path = f"/tmp/otalink-delta-heap-{time.ticks_us() & 0xFFFFFF}.bin"
    gc.collect()
    h0 = gc.mem_alloc()
    fl = FlashBase(path)
    base_len = _program_base(fl.a, base_path)
    nsec = (to_len + 4095) // 4096
    for s in range(nsec):
        fl.b.erase(s)
    # variant: "native" / "bytecode" loops, "+noflash": put() only counts (the applier alone),
    # "+allocating": a put() that allocates (the heap-lock check must catch it)
    native = "bytecode" not in variant
    noflash = "noflash" in variant
    w = Programmer(None if noflash else fl.b, bytearray(unit), "allocating" in variant)
    cbuf = w.cbuf

    h1 = _live()
    import otalink.device.delta as delta

    h2 = _live()
    p = delta.Patcher(fl.a, base_len, to_len, cbuf, w.put, 256, native)
    h3 = _live()
    frame = bytearray(piece + 6)
    fv = memoryview(frame)[6:]
    peak = gc.mem_alloc()
    n = 0
    locked = False
    alloc_error = None
    t_us = 0
    with open(patch_path, "rb") as f:
        while True:
            k = f.readinto(fv)
            if not k:
                break
            if n == 2:
                gc.collect()
                micropython.heap_lock()
                locked = True
            t0 = time.ticks_us()
            try:
                p.feed(frame, 6, k)
            except MemoryError as e:
                micropython.heap_unlock()
                locked = False
                alloc_error = f"MemoryError at piece {n}"
                sys.print_exception(e)
                break
            t_us += time.ticks_diff(time.ticks_us(), t0)
            m = gc.mem_alloc()
            if m > peak:
                peak = m
            n += 1
    if locked:
        micropython.heap_unlock()
    if alloc_error is None:
        p.finish()
    ok = noflash or w.sha.digest() == binascii.unhexlify(sha_hex)
    fl.f.close()
    os.remove(path)
    print(json.dumps({
        "ok": ok and alloc_error is None and w.at == to_len,
        "alloc_error": alloc_error,
        "native": p.native,
        "pieces": n,
        "apply_us": t_us,
        "us_per_kib": t_us * 1024 // to_len,
        "harness_bytes": h1 - h0,
        "code_bytes": h2 - h1,
        "state_bytes": h3 - h2,
        "peak_heap_bytes": peak,
    }))  # fmt: skip


def main(argv):
    mode = argv[1]
    if mode == "heap":
        run_heap(argv[2], argv[3], int(argv[4]), argv[5], int(argv[6]), int(argv[7]), argv[8])
        return
    native = argv[-1] != "bytecode"
    import os

    path = "/tmp/otalink-delta-" + binascii.hexlify(os.urandom(6)).decode() + ".bin"
    flash = FlashBase(path)
    try:
        (run_batch if mode == "apply" else run_ck)(argv[2], argv[3], native, flash)
    finally:
        flash.f.close()
        os.remove(path)
    print("DELTA-OK")


if MP and __name__ == "__main__":
    main(sys.argv)
