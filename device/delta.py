# Delta updates on the device: a streaming applier of detools "sequential" patches (bsdiff
# algorithm, patch compression "none"; docs/adr/0006-delta-updates.md says why). The patch arrives
# in pieces of any size (DATA payloads, or deflate output when the link compresses it), the base
# image is read from a flash Region (the active slot) and the result goes into the caller's
# program unit buffer, handed over one full unit at a time, so the caller programs and hashes it
# exactly as for a full image. RAM: this object, a base window (256 bytes) and the code.
#
# Patch format (detools 0.53, detools/create.py + apply.py; all sizes are detools "sizes": the
# first byte holds bit 7 = more bytes follow, bit 6 = negative, 6 value bits; each further byte
# bit 7 = more, 7 value bits, little-endian):
#   header byte: (patch type << 4) | compression; 0x00 = sequential, none (nothing else accepted)
#   to_size      the result's length: must be the length the signed instruction names
#   dfpatch_size data-format patch (detools' ARM/AArch64/Xtensa code transforms): must be 0
#   then records until to_size result bytes are made:
#     diff_size, diff bytes   result byte = diff byte + base byte (mod 256), base read from fp on
#     extra_size, extra bytes result byte = extra byte
#     adjustment              fp += adjustment (signed)
#   and nothing after the record that completes the result.
# Checks (each a DeviceError(E_PATCH, patch offset), after which the applier is dead): another
# type/compression/data format, to_size not the expected length, a size with more than 4 bytes
# (27 bits; no slot is that large), a negative size, a diff or extra longer than the result left,
# a diff reading outside [0, base_len), an adjustment moving fp outside [0, base_len], bytes
# after the end, and (finish) a patch that ends early. detools' own apply is laxer in two corners
# no patch it makes can reach (a negative size counts as 0 there; fp may leave the base while no
# diff reads it): the device refuses those.
#
# Resume: checkpoint() is the parser's whole state in five integers (patch bytes consumed, result
# bytes emitted, base position, bytes left in the current data field or the partial size's value,
# state byte); it is valid whenever no result byte is waiting in the unit buffer, in particular
# inside the put() callback (every unit boundary: the caller checkpoints at erase-sector
# boundaries). restore() of such a checkpoint followed by the patch bytes from its offset on gives
# the same result as never stopping. save()/load() pack it into 17 bytes (CK_FMT) of the caller's
# state record.
#
# Speed: the per-byte work (diff add, extra copy) runs in two @micropython.viper functions
# compiled at import by the port's own native emitter (exec): build/mpy holds portable bytecode
# (mpy-cross without -march cannot emit native code), and every board port we target has the
# compiler and a native emitter. Where that fails (CPython, a port without them) the same loops
# run as bytecode, ~30x slower, still without allocation. Hot path allocation: none (no slices;
# the base window and the unit buffer are preallocated; tested under heap_lock).
import struct

from otalink.protocol.errors import ProtocolError as DeviceError

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


# Wire codes of delta updates, private copies of protocol/codes.py's (tests/protocol/test_wire.py
# checks them): the instruction names a base whose sha256 is not the active image's (the caller,
# device/slotpatch.py, checks it) / a patch that does not parse or does not fit (here).
_E_BASE_MISMATCH = const(44)
_E_PATCH = const(45)

# parser states (the low 4 bits of the checkpoint's state byte)
_S_HEAD = const(0)  # header byte
_S_TO = const(1)  # to_size
_S_DF = const(2)  # dfpatch_size
_S_DSIZE = const(3)  # diff_size
_S_DIFF = const(4)  # diff bytes
_S_ESIZE = const(5)  # extra_size
_S_EXTRA = const(6)  # extra bytes
_S_ADJ = const(7)  # adjustment
_S_END = const(8)  # the result is complete: no more bytes
_S_DEAD = const(9)  # after an error
_MAXN = const(4)  # bytes of a size: 6 + 3 * 7 = 27 bits
# the states that read a size (bit per state)
_SIZES = const(1 << _S_TO | 1 << _S_DF | 1 << _S_DSIZE | 1 << _S_ESIZE | 1 << _S_ADJ)

# checkpoint record: pos, out, fp, rem, state | partial size bytes << 4 | negative << 7
CK_FMT = "<IIIIB"
CK_LEN = const(17)


def _add(d, do, s, so, w, wo, n):
    # d[do:do+n] = s[so:so+n] + w[wo:wo+n] (mod 256), bytecode: the fallback of the viper add
    for i in range(n):
        d[do + i] = (s[so + i] + w[wo + i]) & 0xFF


def _cpy(d, do, s, so, n):
    for i in range(n):
        d[do + i] = s[so + i]


# The same two loops as machine code, compiled by this port at import (the source text is a
# constant of the module's top-level code only: freed once the import is done). None where that
# fails: CPython (no viper), a port without the compiler or a native emitter, or no room for the
# compiler's transient ~3 KB; Patcher.native says which loops a Patcher got.
try:
    _g = {}
    exec(
        """
@micropython.viper
def add(d, do: int, s, so: int, w, wo: int, n: int):
    dp = ptr8(d)
    sp = ptr8(s)
    wp = ptr8(w)
    e = do + n
    so -= do
    wo -= do
    while do < e:
        dp[do] = sp[do + so] + wp[do + wo]
        do += 1

@micropython.viper
def cpy(d, do: int, s, so: int, n: int):
    dp = ptr8(d)
    sp = ptr8(s)
    e = do + n
    so -= do
    while do < e:
        dp[do] = sp[do + so]
        do += 1
""",
        _g,
    )
    _NAT = (_g["add"], _g["cpy"])
except Exception:
    _NAT = None
_g = None


class Patcher:
    # base: a Region (read(addr, buf), size); base_len: the base image's length; to_len: the
    # result length the signed instruction names; out: the caller's program unit buffer;
    # put(k): called with out full (k == len(out)) during feed(), and with the last k bytes in
    # finish(); it programs and hashes them (and may checkpoint()). win: base window bytes (must
    # divide the erase sector base.es: windows are read whole and aligned, so no read crosses a
    # sector, which not every board's readblocks() allows); native=False forces the bytecode
    # loops (tests, bench).
    def __init__(self, base, base_len, to_len, out, put, win=256, native=True):
        if base.es % win or base.size % base.es or base_len > base.size or to_len < 0 or not out:
            raise ValueError("delta geometry")
        self.base = base
        self.bes = base.es
        self.blen = base_len
        self.tlen = to_len
        self.out = out
        self.unit = len(out)
        self.put = put
        self.win = bytearray(win)
        f = _NAT if native else None
        self.add = f[0] if f else _add
        self.cpy = f[1] if f else _cpy
        self.native = f is not None
        self.restore((0, 0, 0, 0, _S_HEAD))

    def feed(self, mv, start, n):
        # Consume mv[start:start+n] (all of it) or raise DeviceError(E_PATCH, patch offset).
        # Emits every completed unit through put(). No allocation.
        if start < 0 or n < 0 or start + n > len(mv):
            raise ValueError("feed range")
        st = self.st
        p = start
        end = start + n
        base = self.base
        pos0 = self.pos - start  # patch offset of mv[p] is pos0 + p
        out = self.out
        unit = self.unit
        fill = self.fill
        oo = self.oo
        fp = self.fp
        rem = self.rem
        vv = self.vv
        vn = self.vn
        neg = self.neg
        blen = self.blen
        tlen = self.tlen
        win = self.win
        wl = len(win)
        wa = self.wa
        add = self.add
        bes = self.bes
        while p < end:
            if st == _S_DIFF or st == _S_EXTRA:
                k = end - p
                if k > rem:
                    k = rem
                if k > unit - fill:
                    k = unit - fill
                if st == _S_EXTRA:
                    self.cpy(out, fill, mv, p, k)
                elif fill == 0 and k == unit and fp % bes + k <= bes:
                    # a whole unit of diff within a sector: the base straight into the unit,
                    # the patch added to it
                    base.read(fp, out)
                    add(out, 0, mv, p, out, 0, k)
                    fp += k
                else:
                    # through the base window, one aligned window at a time
                    j = 0
                    while j < k:
                        a = fp - wa
                        if wa < 0 or a < 0 or a >= wl:  # (fp moves back too)
                            wa = fp - fp % wl
                            base.read(wa, win)
                            a = fp - wa
                        m = wl - a
                        if m > k - j:
                            m = k - j
                        add(out, fill + j, mv, p + j, win, a, m)
                        j += m
                        fp += m
                p += k
                fill += k
                oo += k
                rem -= k
                if rem == 0:
                    st = _S_ESIZE if st == _S_DIFF else _S_ADJ
                if fill == unit:
                    # the state after this unit, for a checkpoint taken inside put()
                    self.st = st
                    self.pos = pos0 + p
                    self.oo = oo
                    self.fp = fp
                    self.rem = rem
                    self.vn = 0
                    self.fill = 0
                    self.put(unit)
                    fill = 0
                continue
            # one byte of the header or of a size
            b = mv[p]
            p += 1
            if st == _S_HEAD:
                if b:
                    self._fail(pos0 + p - 1)
                st = _S_TO
                continue
            if st >= _S_END:
                self._fail(pos0 + p - 1)  # bytes after the end (or after an error)
            if vn:
                vv |= (b & 0x7F) << (7 * vn - 1)
            else:
                neg = b & 0x40
                vv = b & 0x3F
            vn += 1
            if b & 0x80:
                if vn == _MAXN:
                    self._fail(pos0 + p - 1)
                continue
            vn = 0
            if neg:
                vv = -vv
            if st == _S_TO:
                if vv != tlen:
                    self._fail(pos0 + p - 1)
                st = _S_DF if vv else _S_END
            elif st == _S_DF:
                if vv:
                    self._fail(pos0 + p - 1)  # data formats: not supported
                st = _S_DSIZE
            elif st == _S_ADJ:
                fp += vv
                if fp < 0 or fp > blen:
                    self._fail(pos0 + p - 1)
                st = _S_END if oo == tlen else _S_DSIZE
            else:
                # a diff or extra size: within the result left (and the base, for a diff)
                if vv < 0 or vv > tlen - oo or (st == _S_DSIZE and fp + vv > blen):
                    self._fail(pos0 + p - 1)
                rem = vv
                if st == _S_DSIZE:
                    st = _S_DIFF if vv else _S_ESIZE
                else:
                    st = _S_EXTRA if vv else _S_ADJ
        self.st = st
        self.pos = pos0 + end
        self.fill = fill
        self.oo = oo
        self.fp = fp
        self.rem = rem
        self.vv = vv
        self.vn = vn
        self.neg = neg
        self.wa = wa

    def finish(self):
        # The whole patch was fed: it must have ended exactly; the last partial unit goes to
        # put(). Returns the result length.
        if self.st != _S_END:
            self._fail(self.pos)
        k = self.fill
        if k:
            self.put(k)  # (fill stays set meanwhile: no checkpoint inside this last put)
            self.fill = 0
        return self.oo

    def _fail(self, at):
        self.st = _S_DEAD
        raise DeviceError(_E_PATCH, at)

    # ---- checkpoints ------------------------------------------------------------------------
    def checkpoint(self):
        # (pos, out, fp, rem, state byte): valid only with no result byte waiting in the unit
        # buffer (inside put(), or between feeds at a unit boundary). rem is the partial size's
        # magnitude while one is being read (its sign is bit 7 of the state byte).
        if self.fill or self.st == _S_DEAD:
            raise ValueError("no checkpoint here")
        return (self.pos, self.oo, self.fp, self.vv if self.vn else self.rem, self._sb())

    def _sb(self):
        return self.st | self.vn << 4 | (0x80 if self.vn and self.neg else 0)

    def restore(self, ck):
        # Continue from a checkpoint: the next feed() gives the patch bytes from ck[0] on. A
        # checkpoint that cannot come from this patch and result raises ValueError (the caller
        # then starts over from 0).
        pos, oo, fp, v, sb = ck
        st = sb & 15
        vn = sb >> 4 & 7
        data = st == _S_DIFF or st == _S_EXTRA
        if (
            st >= _S_DEAD
            or oo % self.unit
            or oo > self.tlen
            or fp > self.blen
            or (vn and not (_SIZES >> st & 1))
            or vn >= _MAXN
            or (data and (v == 0 or v > self.tlen - oo))
            or (st == _S_DIFF and fp + v > self.blen)
        ):
            raise ValueError("bad checkpoint")
        self.pos = pos
        self.oo = oo
        self.fp = fp
        self.st = st
        self.vn = vn
        self.neg = sb & 0x80 if vn else 0
        self.vv = v if vn else 0
        self.rem = v if data else 0
        self.fill = 0
        self.wa = -1  # no base window read yet

    def save(self, buf, off):
        # the checkpoint into a state record: CK_LEN bytes at off (no allocation)
        if self.fill or self.st == _S_DEAD:
            raise ValueError("no checkpoint here")
        v = self.vv if self.vn else self.rem
        struct.pack_into(CK_FMT, buf, off, self.pos, self.oo, self.fp, v, self._sb())

    def load(self, buf, off):
        self.restore(struct.unpack_from(CK_FMT, buf, off))
