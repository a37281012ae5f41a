# The NOR flash emulator of the unix port ("the chip"; semantics, power-cut injection and
# configuration: device/flash.py's header and docs/device.md "Flash"). flash.NorFlash and
# flash.FlashViolation are these names. The loader opens the flash once (flashcfg.open_flash)
# and hands the device to whichever agent runs, so this code is loaded once per process.


class PowerCut(BaseException):
    # Raised by the flash emulator in "raise" cut mode. It derives from BaseException so no
    # `except Exception` in the agent swallows it; after it the emulator refuses every operation,
    # so a `finally` block that touches flash raises again instead of writing after the cut.
    pass


def _mod(name):
    # flashcfg.py for a rare path (construction, a cut, the slow bit check), forgotten again (as
    # flash._mod; a copy here so the chip does not keep flash.py loaded for the agent)
    import sys

    m = __import__("otalink.device." + name, None, None, ("*",))
    sys.modules.pop("otalink.device." + name, None)
    pkg = sys.modules.get("otalink.device")
    if pkg is not None and name in pkg.__dict__:
        delattr(pkg, name)
    return m


class FlashViolation(BaseException):
    # A program over non-erased bits or a misaligned operation: a bug in the caller.
    pass


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
        if self.erase_ms:
            import time  # (builtin: no heap)

            time.sleep_ms(self.erase_ms)  # a real chip's sector erase time (config erase_ms)
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
