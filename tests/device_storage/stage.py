# MicroPython helper of the trial-boot tests (not collected): put images into a flash file
# through the Slots API, as a finished update would.
#   micropython stage.py JOB.json
# JOB: {"flash": path, "geom": {...}, "images": [{"path", "version", "rc", "until"}]}
# until = "confirm" (installed, trial passed, confirmed) or "activate" (PENDING: the next boot
# starts its trial). Prints {"code": 0} when every step succeeded.
import hashlib
import json
import sys

from otalink.device.flash import NorFlash
from otalink.device.slots import Slots
from otalink.protocol import codes as C


def install(f, g, spec):
    with open(spec["path"], "rb") as fi:
        img = fi.read()
    s = Slots(f, g)
    s.boot()
    sha = hashlib.sha256(img).digest()
    instr = hashlib.sha256(spec["version"].encode() + sha).digest()
    s.begin(instr, len(img), sha, len(img), C.COMP_NONE, spec["version"], spec["rc"], 0)
    mv = memoryview(img)
    off = 0
    while off < len(img):
        off = s.write(off, mv[off : off + 2048])
    code = s.finish()
    if code == C.OK:
        code = s.activate()
    if code != C.OK or spec["until"] == "activate":
        return code
    s = Slots(f, g)
    s.boot()
    s.trial_passed()
    return s.confirm()


def main():
    with open(sys.argv[1]) as fj:
        job = json.load(fj)
    g = job["geom"]
    f = NorFlash(job["flash"], g["size"], g["erase_size"], g["write_size"])
    code = C.OK
    for spec in job["images"]:
        code = install(f, g, spec)
        if code != C.OK:
            break
    f.close()
    print(json.dumps({"code": code}))


main()
