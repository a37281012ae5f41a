# Start-up and rare-path part of flash.py, loaded per use and dropped again (flash._mod), so none
# of it stays in the serving agent's heap: the default geometry, merging a board/ECU "flash"
# section over it, opening the flash (the NOR emulator on the unix port, the port's block device
# on a board), and the emulator's construction, its power cut and its slow bit check. flash.py
# forwards every name it does not define here (flash.geometry, flash.open_flash, ...).
import os

from micropython import const

# (nor.py is imported where it is needed, not here: store.py loads this module for the geometry
# of every Slots an agent makes, and an agent running from a slot would otherwise load its own
# copy of the emulator beside the loader's, whose device it uses)

_PIECE = const(256)  # emulator erase / blank-check piece

# Default geometry of the unix board (boards/unix/board.json "flash" overrides each key).
DEFAULTS = {
    "size": 1048576,  # whole emulated flash
    "erase_size": 4096,  # erase sector = block size of the block device
    "write_size": 256,  # program granularity (address and length alignment)
    "state_offset": 0,  # persisted records (store.py): state_sectors sectors from here
    "state_sectors": 4,
    "slot_size": 393216,  # 384 KiB per slot
    "slot_offsets": [65536, 458752],  # slot A, slot B
    # raw-deflate window the device announces in caps and decodes with (2**wbits bytes, plus
    # ~1.3 KiB of decoder state, allocated when a compressed transfer starts): 0 = no
    # compression, else 9..15 (zlib cannot make a smaller window). 10 (1 KiB) suits a 32-64 KiB
    # heap; a board with RAM to spare may raise it for a better ratio.
    "deflate_wbits": 10,
}


def geometry(g=None):
    # Board/ECU "flash" section g merged over DEFAULTS, as a new dict.
    r = dict(DEFAULTS)
    if g:
        for k in g:
            r[k] = g[k]
    return r


def region_base(g):
    # byte offset of the otalink region inside the block device (board "region" section)
    r = g.get("region")
    if isinstance(r, dict):
        return r.get("offset", 0)
    return g.get("region_offset", 0)


def open_board_flash(g):
    # The block device of a real board (boardflash.py, loaded for the call: the ports' names it
    # holds are never interned on the unix port)
    from otalink.device.flash import _mod

    return _mod("boardflash").open_board_flash(g)


def _env_int(name, default):
    v = os.getenv(name)
    if v is None or v == "":
        return default
    return int(v)


def open_flash(g):
    # NorFlash from a "flash" config section g (path + geometry + optional cut settings); the
    # environment variables override the cut settings.
    g = geometry(g)
    cut = _env_int("OTALINK_FLASH_CUT", g.get("cut_after", -1))
    tear = _env_int("OTALINK_FLASH_TEAR", 1 if g.get("tear") else 0) != 0
    mode = os.getenv("OTALINK_FLASH_CUT_MODE") or g.get("cut_mode", "kill")
    from otalink.device.nor import NorFlash

    f = NorFlash(g["path"], g["size"], g["erase_size"], g["write_size"], cut, tear, mode)
    f.erase_ms = g.get("erase_ms", 0)  # emulated sector erase time (a real NOR: ~40-400 ms)
    return f


# ---- the NOR emulator's rare paths (flash.NorFlash) -----------------------------------------
def nor_init(self, path, size, erase_size, write_size, cut_after, tear, cut_mode):
    self.size = size
    self.bs = erase_size
    self.ws = write_size
    self.cut_after = cut_after
    self.tear = tear
    self.cut_mode = cut_mode
    self.dead = False
    self.ops = 0
    self.erases = 0
    self.erase_ms = 0
    self.programs = 0
    self.trace = None  # set to a list to record (op, address) of every operation
    # One 256-byte piece of 0xFF and one of scratch, looped per piece: the emulator's RAM counts
    # in the heap figures, so no sector- or program-sized buffers.
    p = _PIECE if erase_size % _PIECE == 0 else erase_size
    self._ff = b"\xff" * p
    self._old = bytearray(p)
    try:
        fresh = os.stat(path)[6] != size
    except OSError:
        fresh = True
    if fresh:
        # a new chip comes erased
        f = open(path, "wb")
        for _ in range(size // p):
            f.write(self._ff)
        f.close()
    self.f = open(path, "r+b")


def check(addr, old, buf, a):
    # a program over bytes that are not blank: NOR can only clear bits
    for i in range(min(len(old), len(buf) - a)):
        b = buf[a + i]
        if old[i] & b != b:
            from otalink.device.nor import FlashViolation

            raise FlashViolation("program 1 over 0", addr + i)


def cut(self, kind, addr, buf):
    # The operation after cut_after: done partially (tear) or not at all, then power is lost.
    f = self.f
    if self.tear:
        # power is about to go: allocating is fine here
        if kind == 1:
            # erase: half erased, the other half garbage (old bits with some forced to 1)
            n = self.bs
            part = bytearray(n)
            f.seek(addr)
            f.readinto(part)
            h = n // 2
            for i in range(n):
                part[i] = 0xFF if i < h else part[i] | (0x55 if i & 1 else 0xA0)
        else:
            # program: a prefix, then one half-programmed byte
            n = len(buf)
            part = bytearray(n)
            f.seek(addr)
            f.readinto(part)
            h = n // 2
            part[h] &= buf[h] | 0xF0
            part[:h] = buf[:h]
        f.seek(addr)
        f.write(part)
    self.dead = True
    if self.cut_mode == "kill":
        # SIGKILL ourselves from a child shell: no finally, no atexit, file data already in
        # the kernel (file writes on the unix port are unbuffered write(2) calls)
        os.system("kill -9 $PPID")
    from otalink.device.nor import PowerCut

    raise PowerCut()
