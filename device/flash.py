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
# Heap: this module stays loaded while the agent serves (Region, _mod), so it holds only that.
# The emulator (NorFlash, FlashViolation) is nor.py: the loader opens the flash once and hands
# the device to the agent, so on the unix port the chip's code is loaded once whichever agent
# runs (flash.NorFlash still finds it). Constructing the emulator, the cut itself, the slow bit
# check of a program over programmed bytes and every other name (geometry, open_flash,
# open_board_flash, DEFAULTS: see __getattr__ below) are in flashcfg.py, loaded per use.


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


def _run(g):
    # drive a storage generator (slotops.begin_g, finish_g, decide._hash_g) to its end in one go
    try:
        while True:
            next(g)
    except StopIteration as e:
        return e.value


def __getattr__(name):
    # flash.NorFlash / FlashViolation: the emulator, in nor.py (the "chip": an idle agent of
    # another slot does not load it twice); flash.geometry / open_flash / open_board_flash /
    # DEFAULTS: start-up helpers in flashcfg.py
    if name == "NorFlash" or name == "FlashViolation":
        from otalink.device import nor

        return getattr(nor, name)
    return getattr(_mod("flashcfg"), name)


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
