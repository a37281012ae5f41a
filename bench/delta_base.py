# MicroPython helper of bench/bench_delta.py (not an agent module): put a base image into an ECU's
# flash file as the confirmed active slot, through the Slots API (begin, write, finish, activate,
# boot on trial, confirm) without a line or a bootable bundle: the delta bench needs the exact
# release binaries of bench/delta_pairs.py as the base a patch applies to, and they are no
# bundles the loader could boot on a trial.
#   micropython delta_base.py JOB.json   JOB: {"flash": path, "geom": {...}, "image": path}
import hashlib
import json
import sys

from otalink.device.flash import NorFlash
from otalink.device.slots import Slots


def main():
    with open(sys.argv[1]) as f:
        job = json.load(f)
    g = job["geom"]
    with open(job["image"], "rb") as f:
        img = f.read()

    def flash():
        return NorFlash(job["flash"], g["size"], g["erase_size"], g["write_size"])

    fl = flash()
    s = Slots(fl, g)
    s.boot()
    sha = hashlib.sha256(img).digest()
    s.begin(hashlib.sha256(b"base").digest(), len(img), sha, len(img), 0, "1.0.0", 2, 1)
    mv = memoryview(img)
    off = 0
    while off < len(img):
        off = s.write(off, mv[off : off + 4096])
    assert s.finish() == 0
    assert s.activate() == 0
    fl.close()
    fl = flash()
    s = Slots(fl, g)
    s.boot()
    s.trial_passed()
    assert s.confirm() == 0
    fl.close()
    print("BASE-OK")


main()
