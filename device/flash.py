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
_PIECE = const(256)  # emulator erase/compare piece


class FlashViolation(BaseException):
    # A program over non-erased bits or a misaligned operation: a bug in the caller.
    pass


def _cfg():
    # start-up helpers (geometry defaults, opening the flash) live in flashcfg.py, which Slots
    # drops once constructed so the agent does not keep their code in its heap
    from otalink.device import flashcfg

    return flashcfg


def geometry(flash_cfg=None):
    # the board/ECU "flash" section merged over flashcfg.DEFAULTS, as a new dict
    return _cfg().geometry(flash_cfg)


def open_board_flash(g):
    return _cfg().open_board_flash(g)


def open_flash(flash_cfg):
    return _cfg().open_flash(flash_cfg)


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
        # One 256-byte (write granularity) piece of 0xFF and one of scratch, looped per piece:
        # the emulator's RAM counts in the heap figures, so no sector- or program-sized buffers.
        p = _PIECE if erase_size % _PIECE == 0 and _PIECE % write_size == 0 else write_size
        self._p = p
        self._ff = b"\xff" * p
        self._old = bytearray(p)
        self._tail = None  # (scratch, 0xFF) for a program length that is not a multiple of p
        if fresh:
            # a new chip comes erased
            f = open(path, "wb")
            for _ in range(size // p):
                f.write(self._ff)
            f.close()
        self.f = open(path, "r+b")

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
        for _ in range(self.bs // self._p):
            f.write(self._ff)

    def program(self, addr, buf):
        n = len(buf)
        if addr % self.ws or n % self.ws or addr < 0 or addr + n > self.size:
            raise FlashViolation("misaligned program", addr, n)
        f = self.f
        p = self._p
        old = self._old
        ff = self._ff
        # blank check per piece: bytearray == bytes compares without allocating; n is a
        # multiple of the piece on the hot path (the program unit), else a short last piece
        # (a while loop: `for in range` with a variable step allocates a range object)
        f.seek(addr)
        a = 0
        while a < n:
            if n - a < p:
                # short tail (a state record smaller than a piece): buffers made once per length
                t = self._tail
                if t is None or len(t[0]) != n - a:
                    t = self._tail = (bytearray(n - a), ff[: n - a])
                old = t[0]
                ff = t[1]
            f.readinto(old)
            if old != ff:
                self._check_bits(addr + a, old, buf, a)
            a += p
        if self._op(OP_PROGRAM, addr):
            if self.tear:
                part = bytearray(n)  # power is about to go: allocating is fine here
                f.seek(addr)
                f.readinto(part)
                h = n // 2
                part[h] &= buf[h] | 0xF0  # a half-programmed byte
                part[:h] = buf[:h]
                f.seek(addr)
                f.write(part)
            self._die()
        self.programs += 1
        f.seek(addr)
        f.write(buf)

    def _check_bits(self, addr, old, buf, a):
        # slow path, only when the target is not blank: NOR can only clear bits
        for i in range(len(old)):
            b = buf[a + i]
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
