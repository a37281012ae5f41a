# Ed25519 (RFC 8032) for MicroPython: signing, and the arithmetic verification shares
# (verification itself: ed25519v.py), pure Python.
#
# SigningKey(seed32): .public (32 bytes), .sign(data) -> 64 bytes (deterministic, RFC 8032 5.1.6).
# verify(pub32, data, sig64) -> bool, verify_g: ed25519v.py's (strict: its header), found here too
#   (__getattr__ loads it), so a caller that signs never loads verification's code.
# sha512(data=b""): SHA-512 (below; ed25519 is its only user).
# Sliced forms for the agent beside an application (issue 11: nothing blocks the asyncio loop
# for long): public_g(seed), sign_g(seed, pub, data) (and ed25519v.verify_g) are generators
# that yield every _SLICE bits of the scalar multiplication and between the other steps of a
# few ms (a point decode or encode: one modular power each; the message's SHA-512), so no slice
# holds the loop for more than ~3-5 ms at a 256k heap (bench: app_max_stall_ms); they return
# the result (bool / public key / signature) as their StopIteration value; run(gen) drives one
# to its end. The plain functions above are run() of them.
#
# Size over speed (the module is loaded per HELLO / STATUS_REQ / BEGIN and dropped again, and on
# the unix port its code sits in the GC heap; a signature, every HELLO's, loads this module
# alone: ~1.1 KiB less than with verification's code): field elements are ints reduced mod p
# after multiplications; points are extended twisted-Edwards coordinates (X, Y, Z, T)
# [Hisil-Wong-Carter-Dawson 2008] with one doubling and one general addition. _mul2 is a
# Straus / Shamir double-scalar multiplication with one shared doubling chain and the joint sum
# precomputed (verification's [S]B + [k](-A): ~256 doublings + ~190 additions; a signature's
# [r]B), a few small tuples live at a time (`make bench-device`: ed25519_verify_ms). Names:
# attributes and arguments use names the port has built in (state, buf, n, length, seed, data,
# encode) where they read as well: every name a loaded module interns costs heap for good
# (docs/device.md "Interned names").
import struct

try:
    from micropython import const
except ImportError:  # CPython (tooling only)

    def const(x):
        return x


# ---- SHA-512 (FIPS 180-4): MicroPython's hashlib has none. In this module, not its own, so a
# HELLO / BEGIN loads one module. Messages are a few hundred bytes, so it favours a small heap
# over speed: 64-bit words as pairs of 32-bit halves (small ints on the unix port: no big int is
# allocated per operation), a 16-word schedule ring shared by all objects, a 128-byte block
# buffer. API as hashlib: sha512(data=b"").update(data); .digest() -> bytes(64).
_M32 = const(0xFFFFFFFF)

# Round constants as 640 raw bytes (not 80 boxed big ints: ~2.5 KB less heap while loaded),
# read with struct.unpack_from per round. A bytes literal, not unhexlify(hex text): loading
# the module then makes one 640-byte object instead of a 1281-byte string plus the result
# (this module is loaded per HELLO/BEGIN into a fragmented heap; big blocks are what fails).
_K = const(
    b"\x42\x8a\x2f\x98\xd7\x28\xae\x22\x71\x37\x44\x91\x23\xef\x65\xcd\xb5\xc0\xfb\xcf\xec\x4d\x3b\x2f"
    b"\xe9\xb5\xdb\xa5\x81\x89\xdb\xbc\x39\x56\xc2\x5b\xf3\x48\xb5\x38\x59\xf1\x11\xf1\xb6\x05\xd0\x19"
    b"\x92\x3f\x82\xa4\xaf\x19\x4f\x9b\xab\x1c\x5e\xd5\xda\x6d\x81\x18\xd8\x07\xaa\x98\xa3\x03\x02\x42"
    b"\x12\x83\x5b\x01\x45\x70\x6f\xbe\x24\x31\x85\xbe\x4e\xe4\xb2\x8c\x55\x0c\x7d\xc3\xd5\xff\xb4\xe2"
    b"\x72\xbe\x5d\x74\xf2\x7b\x89\x6f\x80\xde\xb1\xfe\x3b\x16\x96\xb1\x9b\xdc\x06\xa7\x25\xc7\x12\x35"
    b"\xc1\x9b\xf1\x74\xcf\x69\x26\x94\xe4\x9b\x69\xc1\x9e\xf1\x4a\xd2\xef\xbe\x47\x86\x38\x4f\x25\xe3"
    b"\x0f\xc1\x9d\xc6\x8b\x8c\xd5\xb5\x24\x0c\xa1\xcc\x77\xac\x9c\x65\x2d\xe9\x2c\x6f\x59\x2b\x02\x75"
    b"\x4a\x74\x84\xaa\x6e\xa6\xe4\x83\x5c\xb0\xa9\xdc\xbd\x41\xfb\xd4\x76\xf9\x88\xda\x83\x11\x53\xb5"
    b"\x98\x3e\x51\x52\xee\x66\xdf\xab\xa8\x31\xc6\x6d\x2d\xb4\x32\x10\xb0\x03\x27\xc8\x98\xfb\x21\x3f"
    b"\xbf\x59\x7f\xc7\xbe\xef\x0e\xe4\xc6\xe0\x0b\xf3\x3d\xa8\x8f\xc2\xd5\xa7\x91\x47\x93\x0a\xa7\x25"
    b"\x06\xca\x63\x51\xe0\x03\x82\x6f\x14\x29\x29\x67\x0a\x0e\x6e\x70\x27\xb7\x0a\x85\x46\xd2\x2f\xfc"
    b"\x2e\x1b\x21\x38\x5c\x26\xc9\x26\x4d\x2c\x6d\xfc\x5a\xc4\x2a\xed\x53\x38\x0d\x13\x9d\x95\xb3\xdf"
    b"\x65\x0a\x73\x54\x8b\xaf\x63\xde\x76\x6a\x0a\xbb\x3c\x77\xb2\xa8\x81\xc2\xc9\x2e\x47\xed\xae\xe6"
    b"\x92\x72\x2c\x85\x14\x82\x35\x3b\xa2\xbf\xe8\xa1\x4c\xf1\x03\x64\xa8\x1a\x66\x4b\xbc\x42\x30\x01"
    b"\xc2\x4b\x8b\x70\xd0\xf8\x97\x91\xc7\x6c\x51\xa3\x06\x54\xbe\x30\xd1\x92\xe8\x19\xd6\xef\x52\x18"
    b"\xd6\x99\x06\x24\x55\x65\xa9\x10\xf4\x0e\x35\x85\x57\x71\x20\x2a\x10\x6a\xa0\x70\x32\xbb\xd1\xb8"
    b"\x19\xa4\xc1\x16\xb8\xd2\xd0\xc8\x1e\x37\x6c\x08\x51\x41\xab\x53\x27\x48\x77\x4c\xdf\x8e\xeb\x99"
    b"\x34\xb0\xbc\xb5\xe1\x9b\x48\xa8\x39\x1c\x0c\xb3\xc5\xc9\x5a\x63\x4e\xd8\xaa\x4a\xe3\x41\x8a\xcb"
    b"\x5b\x9c\xca\x4f\x77\x63\xe3\x73\x68\x2e\x6f\xf3\xd6\xb2\xb8\xa3\x74\x8f\x82\xee\x5d\xef\xb2\xfc"
    b"\x78\xa5\x63\x6f\x43\x17\x2f\x60\x84\xc8\x78\x14\xa1\xf0\xab\x72\x8c\xc7\x02\x08\x1a\x64\x39\xec"
    b"\x90\xbe\xff\xfa\x23\x63\x1e\x28\xa4\x50\x6c\xeb\xde\x82\xbd\xe9\xbe\xf9\xa3\xf7\xb2\xc6\x79\x15"
    b"\xc6\x71\x78\xf2\xe3\x72\x53\x2b\xca\x27\x3e\xce\xea\x26\x61\x9c\xd1\x86\xb8\xc7\x21\xc0\xc2\x07"
    b"\xea\xda\x7d\xd6\xcd\xe0\xeb\x1e\xf5\x7d\x4f\x7f\xee\x6e\xd1\x78\x06\xf0\x67\xaa\x72\x17\x6f\xba"
    b"\x0a\x63\x7d\xc5\xa2\xc8\x98\xa6\x11\x3f\x98\x04\xbe\xf9\x0d\xae\x1b\x71\x0b\x35\x13\x1c\x47\x1b"
    b"\x28\xdb\x77\xf5\x23\x04\x7d\x84\x32\xca\xab\x7b\x40\xc7\x24\x93\x3c\x9e\xbe\x0a\x15\xc9\xbe\xbc"
    b"\x43\x1d\x67\xc4\x9c\x10\x0d\x4c\x4c\xc5\xd4\xbe\xcb\x3e\x42\xb6\x59\x7f\x29\x9c\xfc\x65\x7e\x2a"
    b"\x5f\xcb\x6f\xab\x3a\xd6\xfa\xec\x6c\x44\x19\x8c\x4a\x47\x58\x17"
)  # fmt: skip

# Initial hash value as 16 32-bit halves (hi, lo, hi, lo, ...)
_IV = const((
    0x6A09E667, 0xF3BCC908, 0xBB67AE85, 0x84CAA73B, 0x3C6EF372, 0xFE94F82B, 0xA54FF53A, 0x5F1D36F1,
    0x510E527F, 0xADE682D1, 0x9B05688C, 0x2B3E6C1F, 0x1F83D9AB, 0xFB41BD6B, 0x5BE0CD19, 0x137E2179,
))  # fmt: skip


class sha512:
    # The message schedule as a 16-word ring (w[i] only needs w[i-16], w[i-15], w[i-7], w[i-2]),
    # in 32-bit halves shared by every object: _block never re-enters and the agent is
    # single-threaded.
    _wh = [0] * 16
    _wl = [0] * 16

    def __init__(self, data=None):
        self.state = list(_IV)
        self.buf = bytearray(128)
        self.n = 0  # bytes waiting in buf
        self.length = 0  # total message bytes
        if data:
            self.update(data)

    def _block(self, b):
        # 64-bit words as (hi, lo) pairs of 32-bit ints: on the 64-bit unix port every value
        # stays a small int (a 64-bit word would be a heap-allocated big int per operation).
        # rotr(x, n) for n < 32: hi = hi >> n | (lo & (2^n - 1)) << (32 - n), lo likewise with
        # the halves swapped; rotr(x, 32 + n) is rotr(x, n) of the swapped halves.
        wh = self._wh
        wl = self._wl
        h = self.state
        ah, al, bh, bl, ch, cl, dh, dl, eh, el, fh, fl, gh, gl, hh, hl = h
        K = _K
        M = _M32
        unpack = struct.unpack_from
        for i in range(80):
            j = i & 15
            if i < 16:
                xh, xl = unpack(b">II", b, i << 3)
            else:
                # w[i] = w[i-16] + s0(w[i-15]) + w[i-7] + s1(w[i-2])
                k = (i + 1) & 15
                xh = wh[k]
                xl = wl[k]
                s0h = (xh >> 1 | (xl & 1) << 31) ^ (xh >> 8 | (xl & 0xFF) << 24) ^ (xh >> 7)
                s0l = (xl >> 1 | (xh & 1) << 31) ^ (xl >> 8 | (xh & 0xFF) << 24)
                s0l ^= xl >> 7 | (xh & 0x7F) << 25
                k = (i + 14) & 15
                xh = wh[k]
                xl = wl[k]
                s1h = (xh >> 19 | (xl & 0x7FFFF) << 13) ^ (xl >> 29 | (xh & 0x1FFFFFFF) << 3)
                s1h ^= xh >> 6
                s1l = (xl >> 19 | (xh & 0x7FFFF) << 13) ^ (xh >> 29 | (xl & 0x1FFFFFFF) << 3)
                s1l ^= xl >> 6 | (xh & 0x3F) << 26
                k = (i + 9) & 15
                xl = wl[j] + s0l + wl[k] + s1l
                xh = (wh[j] + s0h + wh[k] + s1h + (xl >> 32)) & M
                xl &= M
            wh[j] = xh
            wl[j] = xl
            kh, kl = unpack(b">II", K, i << 3)
            # t1 = h + S1(e) + Ch(e, f, g) + K[i] + w[i]; S1 = rotr 14 ^ rotr 18 ^ rotr 41
            s1h = (eh >> 14 | (el & 0x3FFF) << 18) ^ (eh >> 18 | (el & 0x3FFFF) << 14)
            s1h ^= el >> 9 | (eh & 0x1FF) << 23
            s1l = (el >> 14 | (eh & 0x3FFF) << 18) ^ (el >> 18 | (eh & 0x3FFFF) << 14)
            s1l ^= eh >> 9 | (el & 0x1FF) << 23
            tl = hl + s1l + ((el & fl) ^ ((el ^ M) & gl)) + kl + xl
            th = hh + s1h + ((eh & fh) ^ ((eh ^ M) & gh)) + kh + xh + (tl >> 32)
            tl &= M
            # t2 = S0(a) + Maj(a, b, c); S0 = rotr 28 ^ rotr 34 ^ rotr 39
            s0h = (ah >> 28 | (al & 0xFFFFFFF) << 4) ^ (al >> 2 | (ah & 3) << 30)
            s0h ^= al >> 7 | (ah & 0x7F) << 25
            s0l = (al >> 28 | (ah & 0xFFFFFFF) << 4) ^ (ah >> 2 | (al & 3) << 30)
            s0l ^= ah >> 7 | (al & 0x7F) << 25
            ul = s0l + ((al & (bl | cl)) | (bl & cl))
            uh = s0h + ((ah & (bh | ch)) | (bh & ch))
            hh = gh
            hl = gl
            gh = fh
            gl = fl
            fh = eh
            fl = el
            el = dl + tl
            eh = (dh + th + (el >> 32)) & M
            el &= M
            dh = ch
            dl = cl
            ch = bh
            cl = bl
            bh = ah
            bl = al
            al = tl + ul
            ah = (th + uh + (al >> 32)) & M
            al &= M
        v = (ah, al, bh, bl, ch, cl, dh, dl, eh, el, fh, fl, gh, gl, hh, hl)
        for i in range(0, 16, 2):
            lo = h[i + 1] + v[i + 1]
            h[i] = (h[i] + v[i] + (lo >> 32)) & M
            h[i + 1] = lo & M

    def update(self, data):
        mv = memoryview(data)
        n = len(mv)
        self.length += n
        buf = self.buf
        pos = 0
        if self.n:
            take = min(128 - self.n, n)
            buf[self.n : self.n + take] = mv[:take]
            self.n += take
            pos = take
            if self.n < 128:
                return self
            self._block(buf)
            self.n = 0
        while n - pos >= 128:
            self._block(mv[pos : pos + 128])
            pos += 128
        if pos < n:
            buf[0 : n - pos] = mv[pos:]
            self.n = n - pos
        return self

    def digest(self):
        # Finalise a copy so the object can keep absorbing (hashlib semantics).
        c = sha512()
        c.state = list(self.state)
        c.buf[:] = self.buf
        c.n = self.n
        bits = self.length * 8
        n = c.n
        buf = c.buf
        buf[n] = 0x80
        n += 1
        if n > 112:
            for i in range(n, 128):
                buf[i] = 0
            c._block(buf)
            n = 0
        for i in range(n, 120):
            buf[i] = 0
        struct.pack_into(b">II", buf, 120, (bits >> 32) & _M32, bits & _M32)
        c._block(buf)
        return struct.pack(b">16I", *c.state)


# ---- Ed25519 --------------------------------------------------------------------------
# (private consts: folded into the module's constant table, no global name interned)
_P = const(2**255 - 19)
_L = const(2**252 + 27742317777372353535851937790883648493)
# d = -121665/121666 mod p; 2d; sqrt(-1) = 2^((p-1)/4)
_D = const(37095705934669439343138083508754565189542113879843219016388785533085940283555)
_D2 = const(16295367250680780974490674513165176452449235426866156013048779062215315747161)
_SQRT_M1 = const(19681161376707505956807079304988542015446066515923890162744021073123829784752)
_BY = const(46316835694926478169428394003475163141307993866256225615783033603165251855960)
_BX = const(15112221349535400772501151409588531511454012693041857206046113283949847762202)

_IDENT = const((0, 1, 1, 0))
# the base point in extended coordinates: (x, y, 1, x*y mod p)
_BT = const(46827403850823179245072216630277197565144205554125654976674165829533817101731)
_B = const((_BX, _BY, 1, _BT))


def _dbl(p):
    X, Y, Z, _ = p
    a = X * X % _P
    b = Y * Y % _P
    c = 2 * Z * Z % _P
    h = a + b
    s = X + Y
    e = h - s * s % _P
    g = a - b
    f = c + g
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _add(p, q):
    # General extended addition (a = -1); complete: also doubles, and the identity is neutral.
    X1, Y1, Z1, T1 = p
    X2, Y2, Z2, T2 = q
    a = (Y1 - X1) * (Y2 - X2) % _P
    b = (Y1 + X1) * (Y2 + X2) % _P
    c = T1 * _D2 % _P * T2 % _P
    d = 2 * Z1 * Z2 % _P
    e = b - a
    f = d - c
    g = d + c
    h = b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def encode(p):
    X, Y, Z, _ = p
    zi = pow(Z, _P - 2, _P)
    x = X * zi % _P
    y = Y * zi % _P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


_SLICE = const(8)  # bits of a scalar multiplication between two yields (~3 ms at a 256k heap)


def run(g):
    # drive a generator of this module to its end; its return value
    try:
        while True:
            next(g)
    except StopIteration as e:
        return e.value


def _mul2(a, s, b, t):
    # [s]a + [t]b, scalars < 2^256: one doubling chain, joint bits (a + b made once); a
    # generator: it yields every _SLICE bits and returns the point
    ab = _add(a, b)
    q = _IDENT
    for i in range(255, -1, -1):
        q = _dbl(q)
        x = s >> i & 1
        y = t >> i & 1
        if x and y:
            q = _add(q, ab)
        elif x:
            q = _add(q, a)
        elif y:
            q = _add(q, b)
        if not i % _SLICE:
            yield
    return q


def _h_scalar(*parts):
    h = sha512()
    for p in parts:
        h.update(p)
    return int.from_bytes(h.digest(), "little") % _L


def _secret(seed):
    # (scalar a, prefix) of a seed (RFC 8032 5.1.5)
    if len(seed) != 32:
        raise ValueError("seed")
    h = sha512(seed).digest()
    a = bytearray(h[:32])
    a[0] &= 248
    a[31] &= 127
    a[31] |= 64
    return int.from_bytes(a, "little"), h[32:]


def public_g(seed):
    # the public key of a seed, sliced (a generator returning 32 bytes)
    a, _ = _secret(seed)
    q = yield from _mul2(_B, a, _IDENT, 0)
    yield
    return encode(q)


def sign_g(seed, pub, data):
    # RFC 8032 5.1.6 signature of data, sliced (a generator returning 64 bytes); pub: the seed's
    # public key (public_g), kept by the caller so each signature costs one multiplication
    a, prefix = _secret(seed)
    r = _h_scalar(prefix, data)
    yield
    q = yield from _mul2(_B, r, _IDENT, 0)
    yield
    rb = encode(q)
    yield
    k = _h_scalar(rb, pub, data)
    return rb + ((r + k * a) % _L).to_bytes(32, "little")


class SigningKey:
    """An ed25519 private key from its 32-byte seed (RFC 8032 5.1.5 / 5.1.6)."""

    def __init__(self, seed):
        self.seed = bytes(seed)
        self.public = run(public_g(self.seed))

    def sign(self, data):
        return run(sign_g(self.seed, self.public, data))


def __getattr__(name):
    # verify / verify_g / _decode / _small_order: verification's code, in ed25519v.py (the agent
    # loads that module itself, auth.py and commands.py; this serves every other caller)
    from otalink.device import ed25519v

    return getattr(ed25519v, name)
