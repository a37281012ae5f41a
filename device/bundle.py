# Application bundle: what a slot holds on the unix port, rp2 and stm32 (docs/device.md
# "Bundle format"). A flat archive readable with struct, built on the host by
# otalink.host.ecusim.bundle.build_bundle:
#
#   header, 72 bytes:  magic "OTB1" | fmt u8 = 1 | flags u8 = 0 | count u16 |
#                      entry 32s (module imported to boot the app, e.g. "app") |
#                      selftest 32s ("module.function"; must return True)
#   table, count x 56: name 48s (file path in the bundle, "/"-separated, e.g. "app.py",
#                      "lib/util.mpy") | offset u32 (from bundle start) | length u32
#   data:              the files, back to back
# All integers little-endian; names NUL-padded UTF-8. The bundle's integrity is the slot's
# sha256 (checked at read-back and at every boot, and signed via the install instruction), so
# the archive carries no checksum of its own.
#
# Booting a bundle = extracting it to a per-slot folder (skipped when the folder already holds
# this sha256) and importing the entry module from there; see device/boot.py for the sequence
# and the trial bookkeeping. boot(slots, cfg) is the entry the agent's main calls.
import struct

from micropython import const

MAGIC = b"OTB1"
HDR = "<4sBBH32s32s"
HDR_LEN = const(72)
ROW = "<48sII"
ROW_LEN = const(56)
MAX_FILES = const(64)


class BundleError(Exception):
    pass


def _name(b):
    i = b.find(b"\x00")
    return (b if i < 0 else b[:i]).decode()


def parse_header(hdr):
    # -> (count, entry, selftest); hdr = the first HDR_LEN bytes
    magic, fmt, _flags, count, entry, selftest = struct.unpack(HDR, hdr)
    if magic != MAGIC or fmt != 1 or count > MAX_FILES:
        raise BundleError("header")
    return count, _name(entry), _name(selftest)


def read_table(reg, image_len):
    # -> (entry, selftest, [(name, offset, length)]) from a flash region holding the bundle
    hdr = bytearray(HDR_LEN)
    reg.read(0, hdr)
    count, entry, selftest = parse_header(hdr)
    end = HDR_LEN + count * ROW_LEN
    if end > image_len:
        raise BundleError("table")
    rows = []
    row = bytearray(ROW_LEN)
    for i in range(count):
        reg.read(HDR_LEN + i * ROW_LEN, row)
        name, off, ln = struct.unpack(ROW, row)
        name = _name(name)
        if off < end or off + ln > image_len or not name or name[0] == "/" or ".." in name:
            raise BundleError(name)
        rows.append((name, off, ln))
    return entry, selftest, rows


def _rmtree(path):
    import os

    try:
        entries = list(os.ilistdir(path))
    except OSError:
        return
    for e in entries:
        p = path + "/" + e[0]
        if e[1] == 0x4000:
            _rmtree(p)
        else:
            os.remove(p)
    os.rmdir(path)


def _mkdirs(path):
    import os

    cur = ""
    for part in path.split("/"):
        if not part:
            cur = "/"
            continue
        cur = part if not cur else (cur + part if cur.endswith("/") else cur + "/" + part)
        try:
            os.mkdir(cur)
        except OSError:
            pass


def extract(reg, image_len, sha_hex, folder, buf):
    # Write the bundle's files under folder (replacing what is there), unless folder/.sha already
    # names this image. Returns (entry, selftest, module names).
    entry, selftest, rows = read_table(reg, image_len)
    mods = []
    for name, _o, _l in rows:
        base = name.rsplit(".", 1)[0]
        if base.endswith("/__init__"):
            base = base[: -len("/__init__")]
        mods.append(base.replace("/", "."))
    try:
        with open(folder + "/.sha") as f:
            if f.read() == sha_hex:
                return entry, selftest, mods
    except OSError:
        pass
    _rmtree(folder)
    _mkdirs(folder)
    mv = memoryview(buf)
    n = len(buf)
    for name, off, ln in rows:
        if "/" in name:
            _mkdirs(folder + "/" + name.rsplit("/", 1)[0])
        with open(folder + "/" + name, "wb") as f:
            done = 0
            while done < ln:
                k = min(n, ln - done)
                # flash reads must stay inside the region: read whole buffers only where they fit
                reg.read(off + done, mv[:k])
                f.write(mv[:k])
                done += k
    with open(folder + "/.sha", "w") as f:
        f.write(sha_hex)
    return entry, selftest, mods


def boot(slots, cfg):
    # entry point used by device/main.py
    import sys

    from otalink.device import boot as _boot

    r = _boot.run(slots, cfg)
    # boot code is needed once: drop it so the GC can reclaim its bytecode (~8 KB)
    import otalink.device as pkg

    for name in ("boot", "bundle"):
        sys.modules.pop("otalink.device." + name, None)
        if name in pkg.__dict__:
            delattr(pkg, name)
    return r
