# Flash for the device agent: the block-device protocol only, plus a file-backed NOR emulator for
# the unix port and a Region helper that maps byte addresses of one area (a slot, the state area)
# onto any block device that speaks MicroPython's extended protocol:
#   readblocks(block, buf, off)   writeblocks(block, buf, off)   ioctl(op, arg)
#   ioctl 4 = block count, 5 = block size, 6 = erase block `arg`
# (esp32.Partition, rp2.Flash and pyb.Flash all offer it; the emulator below behaves like them).
#
# NorFlash semantics (what NOR hardware does, so bugs show up here and not on a car):
# - erase sets a whole sector (= one block) to 0xFF;
# - programming only clears bits: programming a 1 over a 0 raises FlashViolation (a BaseException,
#   so nothing in the agent can swallow it and the test that caused it fails);
# - programs must be aligned to write_size in address and length;
# - every erase and every program is one "operation"; counters are kept.
# Power-cut injection: cut_after=N lets operations 1..N complete; the next one is either not done
# at all or, with tear, done partially (a program writes a prefix and one half-programmed byte; an
# erase leaves the first half erased and garbage in the second), then power is lost:
#   cut_mode "kill"  (default, the real agent): the process SIGKILLs itself through
#                    os.system("kill -9 $PPID") - the unix port has no os._exit, and a signal from a
#                    child is the only way to die without running `finally` blocks or atexit code;
#   cut_mode "raise" (batched sweeps): raise PowerCut (BaseException) to the driver's top level.
#   In both modes the emulator is dead afterwards: every later operation raises PowerCut again,
#   so no code can touch flash after the cut.
# Configuration: the "flash" section of the ECU config / board profile (keys in DEFAULTS), and
# the environment variables OTALINK_FLASH_CUT (N), OTALINK_FLASH_TEAR (0|1),
# OTALINK_FLASH_CUT_MODE (kill|raise), which override the config.
import os

from micropython import const
from otalink.device.errors import PowerCut

IOCTL_BLOCK_COUNT = const(4)
IOCTL_BLOCK_SIZE = const(5)
IOCTL_BLOCK_ERASE = const(6)

OP_ERASE = const(1)
OP_PROGRAM = const(2)

# Default geometry of the unix board (boards/unix/board.json "flash" overrides each key).
DEFAULTS = {
    "size": 1048576,  # whole emulated flash
    "erase_size": 4096,  # erase sector = block size of the block device
    "write_size": 256,  # program granularity (address and length alignment)
    "state_offset": 0,  # persisted records (store.py): state_sectors sectors from here
    "state_sectors": 4,
    "slot_size": 393216,  # 384 KiB per slot
    "slot_offsets": [65536, 458752],  # slot A, slot B
}


class FlashViolation(BaseException):
    # A program over non-erased bits or a misaligned operation: a bug in the caller.
    pass


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


class NorFlash:
    def __init__(
        self, path, size, erase_size, write_size, cut_after=-1, tear=False, cut_mode="kill"
    ):
        self.path = path
        self.size = size
        self.bs = erase_size
        self.ws = write_size
        self.cut_after = cut_after
        self.tear = tear
        self.cut_mode = cut_mode
        self.dead = False
        self.ops = 0
        self.erases = 0
        self.programs = 0
        self.trace = None  # set to a list to record (op, address) of every operation
        try:
            st = os.stat(path)
            fresh = st[6] != size
        except OSError:
            fresh = True
        if fresh:
            # a new chip comes erased
            f = open(path, "wb")
            ff = b"\xff" * erase_size
            for _ in range(size // erase_size):
                f.write(ff)
            f.close()
        self.f = open(path, "r+b")
        # erase writes 0xFF in pieces of <= 1 KiB: the emulator's RAM counts in the heap figures
        self._ep = 1024 if erase_size % 1024 == 0 else erase_size
        self._ff = b"\xff" * self._ep
        # program-check scratch buffers keyed by length: the hot path uses one length only
        self._scratch = {}

    # ---- block-device protocol ----------------------------------------------------------
    def readblocks(self, block, buf, off=0):
        if self.dead:
            raise PowerCut()
        f = self.f
        f.seek(block * self.bs + off)
        f.readinto(buf)

    def writeblocks(self, block, buf, off=None):
        if off is None:
            # simple protocol: whole blocks, erase then program
            n = len(buf) // self.bs
            for i in range(n):
                self.erase(block + i)
            self.program(block * self.bs, buf)
        else:
            self.program(block * self.bs + off, buf)

    def ioctl(self, op, arg):
        if op == IOCTL_BLOCK_COUNT:
            return self.size // self.bs
        if op == IOCTL_BLOCK_SIZE:
            return self.bs
        if op == IOCTL_BLOCK_ERASE:
            self.erase(arg)
            return 0
        return 0

    # ---- operations -------------------------------------------------------------------
    def _op(self, kind, addr):
        # Called before every operation; returns True if this operation must be torn.
        if self.dead:
            raise PowerCut()
        if self.trace is not None:
            self.trace.append((kind, addr))
        if self.ops == self.cut_after:
            return True
        self.ops += 1
        return False

    def erase(self, block):
        addr = block * self.bs
        if addr < 0 or addr + self.bs > self.size:
            raise FlashViolation("erase out of range", block)
        if self._op(OP_ERASE, addr):
            if self.tear:
                # half erased, the other half garbage: old bits with some forced to 1
                old = bytearray(self.bs)
                self.f.seek(addr)
                self.f.readinto(old)
                h = self.bs // 2
                for i in range(h, self.bs):
                    old[i] |= 0x55 if i & 1 else 0xA0
                for i in range(h):
                    old[i] = 0xFF
                self.f.seek(addr)
                self.f.write(old)
            self._die()
        self.erases += 1
        f = self.f
        f.seek(addr)
        for _ in range(self.bs // self._ep):
            f.write(self._ff)

    def program(self, addr, buf):
        n = len(buf)
        if addr % self.ws or n % self.ws or addr < 0 or addr + n > self.size:
            raise FlashViolation("misaligned program", addr, n)
        sc = self._scratch.get(n)
        if sc is None:
            sc = (bytearray(n), b"\xff" * n)
            self._scratch[n] = sc
        old = sc[0]
        f = self.f
        f.seek(addr)
        f.readinto(old)
        # fast path: target range fully erased (bytearray == bytes compares without allocating)
        if old != sc[1]:
            self._check_bits(addr, old, buf)
        if self._op(OP_PROGRAM, addr):
            if self.tear:
                h = n // 2
                part = bytearray(old)
                for i in range(h):
                    part[i] = buf[i]
                part[h] = old[h] & (buf[h] | 0xF0)  # a half-programmed byte
                f.seek(addr)
                f.write(part)
            self._die()
        self.programs += 1
        f.seek(addr)
        f.write(buf)

    def _check_bits(self, addr, old, buf):
        # slow path, only when the target is not blank: NOR can only clear bits
        for i in range(len(buf)):
            b = buf[i]
            if old[i] & b != b:
                raise FlashViolation("program 1 over 0", addr + i)

    def _die(self):
        self.dead = True
        if self.cut_mode == "kill":
            # SIGKILL ourselves from a child shell: no finally, no atexit, file data already in
            # the kernel (file writes on the unix port are unbuffered write(2) calls)
            os.system("kill -9 $PPID")
        raise PowerCut()

    def close(self):
        if not self.dead:
            self.f.close()


def open_flash(flash_cfg):
    # NorFlash from a "flash" config section (path + geometry + optional cut settings); the
    # environment variables override the cut settings.
    g = geometry(flash_cfg)
    cut = _env_int("OTALINK_FLASH_CUT", g.get("cut_after", -1))
    tear = _env_int("OTALINK_FLASH_TEAR", 1 if g.get("tear") else 0) != 0
    mode = os.getenv("OTALINK_FLASH_CUT_MODE") or g.get("cut_mode", "kill")
    return NorFlash(g["path"], g["size"], g["erase_size"], g["write_size"], cut, tear, mode)


class Region:
    # A byte-addressed window of `size` bytes at byte `base` of a block device. Erase works in
    # sectors of the device's block size, which must be the erase sector (true for
    # esp32.Partition, rp2.Flash and the emulator).
    def __init__(self, bdev, base, size, erase_size):
        self.dev = bdev
        self.base = base
        self.size = size
        self.es = erase_size
        if base % erase_size or size % erase_size:
            raise ValueError("region not sector aligned")

    def read(self, addr, buf):
        a = self.base + addr
        self.dev.readblocks(a // self.es, buf, a % self.es)

    def program(self, addr, buf):
        a = self.base + addr
        self.dev.writeblocks(a // self.es, buf, a % self.es)

    def erase(self, sector):
        self.dev.ioctl(IOCTL_BLOCK_ERASE, self.base // self.es + sector)

    def sectors(self):
        return self.size // self.es
