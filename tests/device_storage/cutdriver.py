# MicroPython driver of the power-cut sweep (run by test_powercut.py, not collected by pytest):
#   micropython -X heapsize=4m cutdriver.py JOB.json
# JOB: {"flash": path, "geom": {...}, "base": path of the flash image to start each cut from,
#       "wire": path, "image_len", "sha": hex, "instr": hex, "comp", "version", "rc",
#       "versions": {sha_hex: version} (the images the test knows),
#       "mode": "trace" | "cut", "cuts": [[after_ops, tear], ...],
#       "pbase": hex (a patch, comp 3/4: the base sha256 the instruction binds; tests/delta)}
# "install": run the update once on the flash file as it is (makes the base image).
# "trace": run the update once without a cut, print {"ops": [[kind, addr], ...]}.
# "cut":   for each cut: restore the base image, run the update with the emulator armed in
#          "raise" mode (PowerCut = power lost; nothing runs after it), then on a fresh emulator
#          (power back) boot, check what runs, retry the update to completion and print one JSON
#          line with what was seen. The CPython test judges the lines.
import hashlib
import json
import sys

from otalink.device.errors import PowerCut
from otalink.device.flash import NorFlash
from otalink.device.slots import Slots
from otalink.protocol import codes as C

BEGUN = [-1]  # the wire offset the last begin() answered (a resume: > 0)


def hexs(b):
    return "".join(f"{x:02x}" for x in b)


def update(f, g, job, wire):
    # one full install: boot, begin (or resume), write, finish, activate, reboot, self-test,
    # confirm - what the session does, minus the wire
    s = Slots(f, g)
    slot, _act, _ = s.boot()
    st = s.slot[slot] if slot >= 0 else None
    if st is not None and st[0] == C.SLOT_TRIAL:
        # a reboot landed us on the new image's trial: self-test passes, confirm
        s.trial_passed()
        return s.confirm()
    if st is not None and st[0] == C.SLOT_CONFIRMED and hexs(st[5]) == job["sha"]:
        return C.OK  # already done
    if "pbase" in job:
        s.pbase = bytes.fromhex(job["pbase"])  # what session.start takes from the instruction
    off = s.begin(
        bytes.fromhex(job["instr"]), job["image_len"], bytes.fromhex(job["sha"]), len(wire),
        job["comp"], job["version"], job["rc"], 0,
    )  # fmt: skip
    BEGUN[0] = off
    mv = memoryview(wire)
    step = 2000
    while off < len(wire):
        n = min(step, len(wire) - off)
        off = s.write(off, mv[off : off + n])
    code = s.finish()
    if code != C.OK:
        return code
    code = s.activate()
    if code != C.OK:
        return code
    s = Slots(f, g)  # reboot
    slot, _act, _ = s.boot()
    if slot < 0 or s.slot[slot][0] != C.SLOT_TRIAL:
        return C.E_INTERNAL
    s.trial_passed()
    return s.confirm()


def observe(f, g, job):
    # boot after power is back: what runs, and does its content match a known image?
    s = Slots(f, g)
    slot, act, _reason = s.boot()
    out = {"slot": slot, "action": act}
    if slot >= 0:
        st = s.slot[slot]
        reg = s.regions[slot]
        h = hashlib.sha256()
        buf = bytearray(256)
        n = st[4]
        a = 0
        while a < n:
            k = min(256, n - a)
            reg.read(a, buf)
            h.update(memoryview(buf)[:k])
            a += k
        out["state"] = st[0]
        out["version"] = st[6].decode()
        out["recorded_sha"] = hexs(st[5])
        out["content_sha"] = hexs(h.digest())
    return out


def main():
    with open(sys.argv[1]) as fj:
        job = json.load(fj)
    g = job["geom"]
    with open(job["wire"], "rb") as fw:
        wire = fw.read()
    base = None
    if job["mode"] != "install":
        with open(job["base"], "rb") as fb:
            base = fb.read()
    path = job["flash"]

    def restore():
        with open(path, "wb") as fo:
            fo.write(base)

    def flash(cut=-1, tear=False):
        return NorFlash(path, g["size"], g["erase_size"], g["write_size"], cut, tear, "raise")

    if job["mode"] == "install":
        f = flash()
        code = update(f, g, job, wire)
        f.f.close()
        print(json.dumps({"code": code}))
        return
    if job["mode"] == "trace":
        restore()
        f = flash()
        f.trace = []
        code = update(f, g, job, wire)
        print(json.dumps({"code": code, "ops": f.ops, "trace": f.trace}))
        return
    for cut, tear in job["cuts"]:
        restore()
        f = flash(cut, tear)
        cut_fired = False
        try:
            code = update(f, g, job, wire)
        except PowerCut:
            cut_fired = True
            code = -1
        f.f.close()
        f = flash()
        seen = observe(f, g, job)
        BEGUN[0] = -1
        retry = update(f, g, job, wire)
        f.f.close()
        f = flash()
        final = observe(f, g, job)
        f.f.close()
        print(json.dumps({"cut": cut, "tear": tear, "fired": cut_fired, "code": code,
                          "seen": seen, "retry": retry, "final": final,
                          "resumed": BEGUN[0]}))  # fmt: skip


main()
