# Application bundle: what a slot holds on the unix port, rp2 and stm32 (docs/device.md
# "Bundle format"). A flat archive readable with struct, built on the host by
# otalink.host.ecusim.bundle.build_bundle (format 1) / build_image (format 2):
#
#   header, 72 bytes:  magic "OTB1" | fmt u8 (1 or 2) | flags u8 = 0 | count u16 |
#     fmt 1:           entry 32s (module imported to boot the app, e.g. "app") |
#                      selftest 32s ("module.function"; must return True on a trial boot)
#     fmt 2:           app 32s (the application's entry module: defines `async def main(agent)`
#                      or `def poll(agent)`; "" = an agent-only image) |
#                      agent 32s (the agent's entry module inside the bundle, e.g.
#                      "otalink.device.agent"; "" = no agent: the loader's recovery agent runs)
#   table, count x 56: name 48s (file path in the bundle, "/"-separated, e.g. "app.py",
#                      "otalink/device/agent.mpy") | offset u32 (from bundle start) | length u32
#   data:              the files, back to back
# All integers little-endian; names NUL-padded UTF-8; at most _MAX_FILES files (a fmt-2 image
# carries the agent tree, ~40 files, next to the application's). The bundle's integrity is the
# slot's sha256 (checked at read-back and at every boot, and signed via the install
# instruction), so the archive carries no checksum of its own.
#
# Booting a bundle = extracting it to a per-slot folder (skipped when the folder already holds
# this sha256) and importing from there; device/boot.py is the loader's sequence. This module
# is part of the loader (immutable: the base copy is always the one the loader uses).
import struct

from micropython import const

# (private consts: folded by mpy-cross, no global name interned)
_BUNDLE_MAGIC = const(b"OTB1")
_HDR = const("<4sBBH32s32s")
_HDR_LEN = const(72)
_ROW = const("<48sII")
_ROW_LEN = const(56)
_MAX_FILES = const(96)


class BundleError(Exception):
    pass


def _name(b):
    i = b.find(b"\x00")
    return (b if i < 0 else b[:i]).decode()


def parse_header(hdr):
    # -> (fmt, count, a, b): fmt 1 (entry, selftest), fmt 2 (app, agent); hdr = _HDR_LEN bytes
    magic, fmt, _flags, count, a, b = struct.unpack(_HDR, hdr)
    if magic != _BUNDLE_MAGIC or fmt < 1 or fmt > 2 or count > _MAX_FILES:
        raise BundleError("header")
    return fmt, count, _name(a), _name(b)


def header(reg, image_len):
    # the header of the bundle in a flash region: (fmt, count, a, b)
    hdr = bytearray(_HDR_LEN)
    reg.read(0, hdr)
    h = parse_header(hdr)
    if _HDR_LEN + h[1] * _ROW_LEN > image_len:
        raise BundleError("table")
    return h


def rows(reg, image_len, count):
    # the table, one checked row at a time (a generator: no list of ~100 names in the heap)
    end = _HDR_LEN + count * _ROW_LEN
    row = bytearray(_ROW_LEN)
    for i in range(count):
        reg.read(_HDR_LEN + i * _ROW_LEN, row)
        name, off, ln = struct.unpack(_ROW, row)
        name = _name(name)
        if off < end or off + ln > image_len or not name or name[0] == "/" or ".." in name:
            raise BundleError(name)
        yield name, off, ln


def read_table(reg, image_len):
    # -> (fmt, a, b, [(name, offset, length)])
    fmt, count, a, b = header(reg, image_len)
    return fmt, a, b, list(rows(reg, image_len, count))


def module_names(reg, image_len):
    # the module names a bundle's files import as ("app", "lib.util", "otalink.device.agent")
    fmt, count, _a, _b = header(reg, image_len)
    mods = []
    for name, _o, _l in rows(reg, image_len, count):
        base = name.rsplit(".", 1)[0]
        if base.endswith("/__init__"):
            base = base[: -len("/__init__")]
        mods.append(base.replace("/", "."))
    return mods


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


def extract(reg, image_len, sha_hex, folder, buf, tick=None):
    # Write the bundle's files under folder (replacing what is there), unless folder/.sha already
    # names this image. Returns (fmt, a, b) of the header. tick() is called after each file
    # (the loader feeds its watchdog there).
    fmt, count, a, b = header(reg, image_len)
    try:
        with open(folder + "/.sha") as f:
            if f.read() == sha_hex:
                return fmt, a, b
    except OSError:
        pass
    for _ in rows(reg, image_len, count):
        pass  # the whole table checks out before anything is replaced
    _rmtree(folder)
    _mkdirs(folder)
    mv = memoryview(buf)
    n = len(buf)
    for name, off, ln in rows(reg, image_len, count):
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
        if tick:
            tick()
    with open(folder + "/.sha", "w") as f:
        f.write(sha_hex)
    return fmt, a, b
