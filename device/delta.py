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
# a diff reading outside [0, size), an adjustment moving fp outside [0, size] (size: the base's
# length), bytes after the end, and (finish) a patch that ends early. detools' own apply is laxer
# in two corners no patch it makes can reach (a negative size counts as 0 there; fp may leave the
# base while no diff reads it): the device refuses those.
#
# Resume: checkpoint() is the parser's whole state in five integers (patch bytes consumed, result
# bytes emitted, base position, bytes left in the current data field or the partial size's value,
# state byte); it is valid whenever no result byte is waiting in the unit buffer, in particular
# inside the put() callback (every unit boundary: the caller checkpoints at erase-sector
# boundaries). restore() of such a checkpoint followed by the patch bytes from its offset on gives
# the same result as never stopping. save()/load() pack it into 17 bytes (_CK_FMT) of the caller's
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

# checkpoint record: pos, out, fp, rem, state | partial size bytes << 4 | negative << 7. Private
# consts, a bytes format (struct takes one): none of them is an interned name on the device
# (docs/device.md "Interned names": every name an update interns counts against its heap).
_CK_FMT = const(b"<IIIIB")
_CK_LEN = const(17)  # struct.calcsize(_CK_FMT)

# The parser's registers, one list (Patcher.q) instead of an attribute each: indices
_OO = const(0)  # result bytes emitted
_FP = const(1)  # base position
_REM = const(2)  # bytes left in the current data field
_VV = const(3)  # the partial size's value
_VN = const(4)  # its bytes read so far
_NEG = const(5)  # its sign
_WA = const(6)  # base address of the window's content (-1: none read)
_FILL = const(7)  # result bytes waiting in the unit buffer
_ST = const(8)  # parser state


def _add(d, i, b, k, w, m, n):
    # d[i:i+n] = b[k:k+n] + w[m:m+n] (mod 256), bytecode: the fallback of the viper add. (Its
    # argument and local names are one letter names the agent interns anyway: docs/device.md
    # "Interned names"; likewise the viper source below.)
    for c in range(n):
        d[i + c] = (b[k + c] + w[m + c]) & 0xFF


def _cpy(d, i, b, k, n):
    for c in range(n):
        d[i + c] = b[k + c]


# The same two loops as machine code, compiled by this port at import (the source text is a
# constant of the module's top-level code only: freed once the import is done). None where that
# fails: CPython (no viper), a port without the compiler or a native emitter, or no room for the
# compiler's transient ~3 KB; Patcher.native says which loops a Patcher got.
try:
    _NAT = {}
    exec(
        """
@micropython.viper
def add(d, i: int, b, k: int, w, m: int, n: int):
    x = ptr8(d)
    y = ptr8(b)
    z = ptr8(w)
    n += i
    k -= i
    m -= i
    while i < n:
        x[i] = y[i + k] + z[i + m]
        i += 1

@micropython.viper
def cpy(d, i: int, b, k: int, n: int):
    x = ptr8(d)
    y = ptr8(b)
    n += i
    k -= i
    while i < n:
        x[i] = y[i + k]
        i += 1
""",
        _NAT,
    )
    _NAT = (_NAT["add"], _NAT["cpy"])
except Exception:
    _NAT = None


class Patcher:
    # base: a Region (read(addr, buf), size, es); size: the base image's length; total: the
    # result length the signed instruction names; out: the caller's program unit buffer;
    # put(k): called with out full (k == len(out)) during feed(), and with the last k bytes in
    # finish(); it programs and hashes them (and may checkpoint()). window: base window bytes
    # (must divide the erase sector base.es: windows are read whole and aligned, so no read
    # crosses a sector, which not every board's readblocks() allows); native=False forces the
    # bytecode loops (tests, bench). State: pos (patch bytes consumed) and the registers q
    # (_OO.._ST above).
    def __init__(self, base, size, total, out, put, window=256, native=True):
        es = base.es
        if es % window or base.size % es or size > base.size or total < 0 or not out:
            raise ValueError("delta geometry")
        self.base = base
        self.es = es
        self.size = size
        self.total = total
        self.out = out
        self.put = put
        self.window = bytearray(window)
        f = _NAT if native else None
        self.add = f[0] if f else _add
        self.cpy = f[1] if f else _cpy
        self.native = f is not None
        self.q = [0] * 9
        self.restore((0, 0, 0, 0, _S_HEAD))

    def feed(self, mv, start, n):
        # Consume mv[start:start+n] (all of it) or raise DeviceError(E_PATCH, patch offset).
        # Emits every completed unit through put(). No allocation.
        if start < 0 or n < 0 or start + n > len(mv):
            raise ValueError("feed: bad range")
        q = self.q
        st = q[_ST]
        p = start
        end = start + n
        base = self.base
        pos0 = self.pos - start  # patch offset of mv[p] is pos0 + p
        out = self.out
        unit = len(out)
        fill = q[_FILL]
        oo = q[_OO]
        fp = q[_FP]
        rem = q[_REM]
        vv = q[_VV]
        vn = q[_VN]
        neg = q[_NEG]
        blen = self.size
        tlen = self.total
        win = self.window
        wl = len(win)
        wa = q[_WA]
        add = self.add
        bes = self.es
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
                    q[_ST] = st
                    self.pos = pos0 + p
                    q[_OO] = oo
                    q[_FP] = fp
                    q[_REM] = rem
                    q[_VN] = 0
                    q[_WA] = wa
                    q[_FILL] = 0
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
        q[_ST] = st
        self.pos = pos0 + end
        q[_FILL] = fill
        q[_OO] = oo
        q[_FP] = fp
        q[_REM] = rem
        q[_VV] = vv
        q[_VN] = vn
        q[_NEG] = neg
        q[_WA] = wa

    def finish(self):
        # The whole patch was fed: it must have ended exactly; the last partial unit goes to
        # put(). Returns the result length.
        q = self.q
        if q[_ST] != _S_END:
            self._fail(self.pos)
        k = q[_FILL]
        if k:
            self.put(k)  # (fill stays set meanwhile: no checkpoint inside this last put)
            q[_FILL] = 0
        return q[_OO]

    def _fail(self, p):
        self.q[_ST] = _S_DEAD
        raise DeviceError(_E_PATCH, p)

    # ---- checkpoints ------------------------------------------------------------------------
    def checkpoint(self):
        # (pos, out, fp, rem, state byte): valid only with no result byte waiting in the unit
        # buffer (inside put(), or between feeds at a unit boundary). rem is the partial size's
        # magnitude while one is being read (its sign is bit 7 of the state byte).
        q = self.q
        if q[_FILL] or q[_ST] == _S_DEAD:
            raise ValueError("no checkpoint here")
        vn = q[_VN]
        b = q[_ST] | vn << 4 | (0x80 if vn and q[_NEG] else 0)
        return (self.pos, q[_OO], q[_FP], q[_VV] if vn else q[_REM], b)

    def restore(self, ck):
        # Continue from a checkpoint: the next feed() gives the patch bytes from ck[0] on. A
        # checkpoint that cannot come from this patch and result raises ValueError (the caller
        # then starts over from 0).
        pos, oo, fp, v, b = ck
        st = b & 15
        vn = b >> 4 & 7
        data = st == _S_DIFF or st == _S_EXTRA
        if (
            st >= _S_DEAD
            or oo % len(self.out)
            or oo > self.total
            or fp > self.size
            or (vn and not (_SIZES >> st & 1))
            or vn >= _MAXN
            or (data and (v == 0 or v > self.total - oo))
            or (st == _S_DIFF and fp + v > self.size)
        ):
            raise ValueError("bad checkpoint")
        self.pos = pos
        q = self.q
        q[_OO] = oo
        q[_FP] = fp
        q[_ST] = st
        q[_VN] = vn
        q[_NEG] = b & 0x80 if vn else 0
        q[_VV] = v if vn else 0
        q[_REM] = v if data else 0
        q[_FILL] = 0
        q[_WA] = -1  # no base window read yet

    def save(self, buf, off):
        # the checkpoint into a state record: _CK_LEN bytes at off. checkpoint()'s fields
        # computed again rather than taken from its tuple: save() runs inside put() on the DATA
        # path, which allocates nothing
        q = self.q
        if q[_FILL] or q[_ST] == _S_DEAD:
            raise ValueError("no checkpoint here")
        vn = q[_VN]
        v = q[_VV] if vn else q[_REM]
        b = q[_ST] | vn << 4 | (0x80 if vn and q[_NEG] else 0)
        struct.pack_into(_CK_FMT, buf, off, self.pos, q[_OO], q[_FP], v, b)

    def load(self, buf, off):
        self.restore(struct.unpack_from(_CK_FMT, buf, off))
