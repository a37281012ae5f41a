# Start-up-only part of flash.py: the default geometry, merging a board/ECU "flash" section over
# it, and opening the flash (the NOR emulator on the unix port, the port's block device on a
# board). flash.py forwards geometry/open_flash/open_board_flash here; Slots drops this module
# (slots._drop) once it is constructed, so none of it stays in the serving agent's heap.
import os

from otalink.device.flash import NorFlash

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


def geometry(flash_cfg=None):
    # Board/ECU "flash" section merged over DEFAULTS, as a new dict.
    g = dict(DEFAULTS)
    if flash_cfg:
        for k in flash_cfg:
            g[k] = flash_cfg[k]
    return g


def region_base(g):
    # byte offset of the otalink region inside the block device (board "region" section)
    r = g.get("region")
    if isinstance(r, dict):
        return r.get("offset", 0)
    return g.get("region_offset", 0)


def open_board_flash(g):
    # The block device of a real board, from the profile's "device" (untestable here: the
    # constructors are the ports' own). Each offers the extended block protocol with erase.
    dev = g.get("device")
    if dev == "rp2.Flash":
        import rp2

        return rp2.Flash()
    if dev == "esp32.Partition":
        import esp32

        found = esp32.Partition.find(esp32.Partition.TYPE_DATA, label=g.get("label", "vfs"))
        if not found:
            raise OSError(19)
        return found[0]
    if dev == "pyb.Flash":
        import pyb

        return pyb.Flash(start=0)
    raise OSError(19)  # ENODEV


def _env_int(name, default):
    v = os.getenv(name)
    if v is None or v == "":
        return default
    return int(v)


def open_flash(flash_cfg):
    # NorFlash from a "flash" config section (path + geometry + optional cut settings); the
    # environment variables override the cut settings.
    g = geometry(flash_cfg)
    cut = _env_int("OTALINK_FLASH_CUT", g.get("cut_after", -1))
    tear = _env_int("OTALINK_FLASH_TEAR", 1 if g.get("tear") else 0) != 0
    mode = os.getenv("OTALINK_FLASH_CUT_MODE") or g.get("cut_mode", "kill")
    return NorFlash(g["path"], g["size"], g["erase_size"], g["write_size"], cut, tear, mode)
