# MicroPython helper of test_memory.py (not collected): run transfers through the real Slots in a
# chosen heap situation and print one JSON line per transfer.
#   micropython memjob.py JOB.json
# JOB: {"flash": path, "geom": {...}, "hole": 0 | bytes,
#       "transfers": [{"wire": path, "sha": hex, "image_len": n, "comp": 0|1|2,
#                      "reboot_at": wire offset (optional)}]}
# hole > 0: after Slots() is constructed the heap is filled, then every other block freed, so the
# largest free block is ~hole bytes: a BEGIN that needed a new ring or any other block larger than
# that would fail with MemoryError.
# reboot_at: once the wire offset reaches it, the process "reboots": Slots and the emulator are
# dropped, made again on the same flash file, boot() runs and the same BEGIN is sent again; the
# offset it answers is reported as "resumed_from" (-1 without a reboot).
# Prints {"code", "image_len", "ring_kept", "wbits", "caps_wbits"} per transfer
# (code -1: MemoryError; ring_kept: the transfer ran on the input ring made by the first Slots()).
import gc
import json
import sys

from otalink.device.errors import DeviceError
from otalink.device.flash import NorFlash, geometry
from otalink.device.slots import Slots


def _fragment(hole):
    keep = [None] * 4096  # made first: growing the list later would need a big block
    n = 0
    try:
        while n < len(keep):
            keep[n] = bytearray(hole)
            n += 1
    except MemoryError:
        pass
    for i in range(0, n, 2):  # every other block: the live ones separate the holes
        keep[i] = None
    gc.collect()
    return keep


def _transfer(job, g, box, fw, t, sha, rc, buf, mv):
    # box = [NorFlash, Slots]: replaced on a reboot; returns (code, resumed_from)
    s = box[1]
    n = fw.seek(0, 2)
    fw.seek(0)
    at = t.get("reboot_at", -1)
    resumed = -1
    try:
        instr = bytes([rc]) + sha[1:]  # one instruction per transfer
        off = s.begin(instr, t["image_len"], sha, n, t["comp"], f"m{rc}", rc, 0)
        while off < n:
            if 0 <= at <= off and resumed < 0:
                box[0].close()
                box[0] = _open(job, g)
                box[1] = s = Slots(box[0], g)
                s.boot()
                off = resumed = s.begin(instr, t["image_len"], sha, n, t["comp"], f"m{rc}", rc, 0)
                fw.seek(off)
                continue
            k = fw.readinto(buf)
            off = s.write(off, mv if k == len(buf) else mv[:k])
        return s.finish(), resumed
    except DeviceError as e:
        s.abort()
        return e.code, resumed
    except MemoryError:
        return -1, resumed


def _open(job, g):
    return NorFlash(job["flash"], g["size"], g["erase_size"], g["write_size"], -1, False, "raise")


def main():
    with open(sys.argv[1]) as fj:
        job = json.load(fj)
    g = geometry(job["geom"])
    box = [_open(job, g), None]
    box[1] = s = Slots(box[0], g)
    ring = s.ring
    s.boot()
    buf = bytearray(g.get("max_data", 4096))
    mv = memoryview(buf)
    rc = s.release_floor
    keep = _fragment(job["hole"]) if job.get("hole") else None
    out = []
    for t in job["transfers"]:
        rc += 1
        sha = bytes.fromhex(t["sha"])
        with open(t["wire"], "rb") as fw:
            code, resumed = _transfer(job, g, box, fw, t, sha, rc, buf, mv)
        s = box[1]
        out.append(
            {
                "code": code,
                "resumed_from": resumed,
                "image_len": t["image_len"],
                "ring_kept": s.ring is ring,
                "wbits": s.wbits,
                "caps_wbits": s.caps()[4],
            }
        )
    del keep
    box[0].close()
    for r in out:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
