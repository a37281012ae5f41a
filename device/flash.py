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
# - every erase and every program is one "operation"; counters are kept (.ops, .erases,
#   .programs; .trace = a list records (op, address) of each: op 1 erase, 2 program).
# Power-cut injection: cut_after=N lets operations 1..N complete; the next one is either not done
# at all or, with tear, done partially (a program writes a prefix and one half-programmed byte; an
# erase leaves the first half erased and garbage in the second), then power is lost:
#   cut_mode "kill"  (default, the real agent): the process SIGKILLs itself through
#                    os.system("kill -9 $PPID") - the unix port has no os._exit, and a signal from a
#                    child is the only way to die without running `finally` blocks or atexit code;
#   cut_mode "raise" (batched sweeps): raise PowerCut (BaseException) to the driver's top level.
#   In both modes the emulator is dead afterwards: every later operation raises PowerCut again,
#   so no code can touch flash after the cut.
# Configuration: the "flash" section of the ECU config / board profile (keys in flashcfg.DEFAULTS),
# and the environment variables OTALINK_FLASH_CUT (N), OTALINK_FLASH_TEAR (0|1),
# OTALINK_FLASH_CUT_MODE (kill|raise), which override the config.
#
# Heap: this module stays loaded while the agent serves (Region on every port, NorFlash on unix),
# so it holds only the operations. Constructing the emulator, the cut itself, the slow bit check
# of a program over programmed bytes and every other name (geometry, open_flash,
# open_board_flash, DEFAULTS: see __getattr__ below) are in flashcfg.py, loaded per use.
from otalink.device.errors import PowerCut


class FlashViolation(BaseException):
    # A program over non-erased bits or a misaligned operation: a bug in the caller.
    pass


def _mod(name):
    # A device module loaded for one call (start-up or cold-path code): imported, then forgotten
    # at once (sys.modules entry, package attribute), so the GC frees its code as soon as the
    # caller lets go of it (the unix port and .mpy files on a filesystem keep loaded bytecode in
    # the heap; frozen code costs nothing). Its names stay interned: load it once at start-up.
    import gc
    import sys

    gc.collect()  # first: the code then goes to the lowest free space, not above garbage
    m = __import__("otalink.device." + name, None, None, ("*",))  # ("*",): the leaf module
    sys.modules.pop("otalink.device." + name, None)
    pkg = sys.modules.get("otalink.device")
    if pkg is not None and name in pkg.__dict__:
        delattr(pkg, name)
    return m


def __getattr__(name):
    # flash.geometry / open_flash / open_board_flash / DEFAULTS: start-up helpers in flashcfg.py
    return getattr(_mod("flashcfg"), name)


class NorFlash:
    def __init__(self, path, size, erase_size, write_size, cut_after=-1, tear=False,
                 cut_mode="kill"):  # fmt: skip
        cfg = _mod("flashcfg")
        cfg.nor_init(self, path, size, erase_size, write_size, cut_after, tear, cut_mode)

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
            for i in range(len(buf) // self.bs):
                self.erase(block + i)
            off = 0
        self.program(block * self.bs + off, buf)

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return self.size // self.bs
        if op == 5:  # block size
            return self.bs
        if op == 6:  # erase
            self.erase(arg)
        return 0

    # ---- operations -------------------------------------------------------------------
    def _op(self, kind, addr, buf):
        # before every operation: trace and count it; the one after cut_after is cut instead
        if self.dead:
            raise PowerCut()
        if self.trace is not None:
            self.trace.append((kind, addr))
        if self.ops == self.cut_after:
            # tear it (or not), then power is lost: no return
            _mod("flashcfg").cut(self, kind, addr, buf)
        self.ops += 1

    def erase(self, block):
        bs = self.bs
        addr = block * bs
        if addr < 0 or addr + bs > self.size:
            raise FlashViolation("erase out of range", block)
        self._op(1, addr, None)
        self.erases += 1
        f = self.f
        f.seek(addr)
        ff = self._ff
        for _ in range(bs // len(ff)):
            f.write(ff)

    def program(self, addr, buf):
        n = len(buf)
        if addr % self.ws or n % self.ws or addr < 0 or addr + n > self.size:
            raise FlashViolation("misaligned program", addr, n)
        # Blank check per piece (bytearray == bytes compares without allocating); a short last
        # piece is read over a blank scratch, so the comparison still covers the whole piece.
        # (A while loop: `for in range` with a variable step allocates a range object.)
        f = self.f
        old = self._old
        ff = self._ff
        p = len(ff)
        f.seek(addr)
        a = 0
        while a < n:
            if n - a < p:
                old[:] = ff
            f.readinto(old, n - a)
            if old != ff:
                _mod("flashcfg").check(addr + a, old, buf, a)  # only clearing bits is allowed
            a += p
        self._op(2, addr, buf)
        self.programs += 1
        f.seek(addr)
        f.write(buf)

    def close(self):
        if not self.dead:
            self.f.close()


class Region:
    # A byte-addressed window of `size` bytes at byte `base` of a block device. Erase works in
    # sectors of the device's block size, which must be the erase sector (true for
    # esp32.Partition, rp2.Flash and the emulator).
    def __init__(self, bdev, base, size, erase_size):
        if base % erase_size or size % erase_size:
            raise ValueError("region not sector aligned")
        self.dev = bdev
        self.base = base
        self.size = size
        self.es = erase_size

    def read(self, addr, buf):
        a = self.base + addr
        self.dev.readblocks(a // self.es, buf, a % self.es)

    def program(self, addr, buf):
        a = self.base + addr
        self.dev.writeblocks(a // self.es, buf, a % self.es)

    def erase(self, block):
        # block: the region's erase sector number
        self.dev.ioctl(6, self.base // self.es + block)
