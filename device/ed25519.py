# Ed25519 (RFC 8032) for MicroPython: strict verification and signing, pure Python.
#
# verify(pub32, msg, sig64) -> bool
#   Strict per RFC 8032 5.1.7, plus libsodium's extra rejections:
#   - S must be canonical (S < L), else reject (blocks S+L malleability);
#   - A and R must decode per 5.1.3: y < p (canonical), a square root exists, and "x = 0 with the
#     sign bit set" is rejected; so non-canonical point encodings fail;
#   - A and R of small order (the 8 torsion points) are rejected;
#   - the cofactorless equation [S]B == R + [k]A is checked, by computing [S]B + [k](-A) and
#     comparing its canonical encoding with the received R bytes. (Cofactorless matches
#     libsodium / pynacl, so both sides agree on every signature an honest signer can make.)
# SigningKey(seed32): .public (32 bytes), .sign(msg) -> 64 bytes (deterministic, RFC 8032 5.1.6).
#
# Size over speed (the whole module is loaded per HELLO / STATUS_REQ / BEGIN and dropped again, and
# on the unix port its code sits in the GC heap): field elements are ints reduced mod p after
# multiplications; points are extended twisted-Edwards coordinates (X, Y, Z, T)
# [Hisil-Wong-Carter-Dawson 2008] with one doubling and one general addition. Verification is a
# Straus / Shamir double-scalar multiplication with one shared doubling chain and the joint sum
# B - A precomputed: ~256 doublings + ~190 additions, a few small tuples live at a time
# (`make bench-device`: ed25519_verify_ms).
from .sha512 import sha512

try:
    from micropython import const
except ImportError:  # CPython (tooling only)

    def const(x):
        return x


P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
# d = -121665/121666 mod p; 2d; sqrt(-1) = 2^((p-1)/4)
D = 37095705934669439343138083508754565189542113879843219016388785533085940283555
D2 = 16295367250680780974490674513165176452449235426866156013048779062215315747161
SQRT_M1 = 19681161376707505956807079304988542015446066515923890162744021073123829784752
_BY = const(46316835694926478169428394003475163141307993866256225615783033603165251855960)
_BX = const(15112221349535400772501151409588531511454012693041857206046113283949847762202)

_IDENT = const((0, 1, 1, 0))
_B = (_BX, _BY, 1, _BX * _BY % P)


def _dbl(p):
    X, Y, Z, _ = p
    a = X * X % P
    b = Y * Y % P
    c = 2 * Z * Z % P
    h = a + b
    s = X + Y
    e = h - s * s % P
    g = a - b
    f = c + g
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _add(p, q):
    # General extended addition (a = -1); complete: also doubles, and the identity is neutral.
    X1, Y1, Z1, T1 = p
    X2, Y2, Z2, T2 = q
    a = (Y1 - X1) * (Y2 - X2) % P
    b = (Y1 + X1) * (Y2 + X2) % P
    c = T1 * D2 % P * T2 % P
    d = 2 * Z1 * Z2 % P
    e = b - a
    f = d - c
    g = d + c
    h = b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _encode(p):
    X, Y, Z, _ = p
    zi = pow(Z, P - 2, P)
    x = X * zi % P
    y = Y * zi % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _decode(s):
    # RFC 8032 5.1.3, strict; returns an extended point or None.
    if len(s) != 32:
        return None
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= P:
        return None  # non-canonical y
    yy = y * y % P
    u = yy - 1
    v = D * yy + 1
    v3 = v * v % P * v % P
    x = u * v3 % P * pow(u * v3 % P * v3 % P * v % P, (P - 5) // 8, P) % P
    vxx = v * x % P * x % P
    if vxx == u % P:
        pass
    elif vxx == (-u) % P:
        x = x * SQRT_M1 % P
    else:
        return None  # not on the curve
    if x == 0 and sign:
        return None  # "negative zero": a second encoding of the same point
    if (x & 1) != sign:
        x = P - x
    return (x, y, 1, x * y % P)


def _small_order(p):
    # [8]p == identity  <=>  X == 0 and Y == Z after three doublings.
    q = _dbl(_dbl(_dbl(p)))
    return q[0] % P == 0 and (q[1] - q[2]) % P == 0


def _mul2(a, ka, b, kb):
    # [ka]a + [kb]b, scalars < 2^256: one doubling chain, joint bits (a + b made once)
    ab = _add(a, b)
    q = _IDENT
    for i in range(255, -1, -1):
        q = _dbl(q)
        x = ka >> i & 1
        y = kb >> i & 1
        if x and y:
            q = _add(q, ab)
        elif x:
            q = _add(q, a)
        elif y:
            q = _add(q, b)
    return q


def _h_scalar(*parts):
    h = sha512()
    for p in parts:
        h.update(p)
    return int.from_bytes(h.digest(), "little") % L


def verify(pub, msg, sig):
    """True iff sig (64 bytes) is a valid strict ed25519 signature of msg by pub (32 bytes)."""
    if len(pub) != 32 or len(sig) != 64:
        return False
    rb = bytes(sig[:32])
    s = int.from_bytes(sig[32:], "little")
    if s >= L:
        return False
    a = _decode(pub)
    if a is None or _small_order(a):
        return False
    r = _decode(rb)
    if r is None or _small_order(r):
        return False
    k = _h_scalar(rb, pub, msg)
    # Q = [s]B + [k](-A); -(X, Y, Z, T) = (-X, Y, Z, -T)
    return _encode(_mul2(_B, s, (P - a[0], a[1], 1, P - a[3]), k)) == rb


class SigningKey:
    """An ed25519 private key from its 32-byte seed (RFC 8032 5.1.5 / 5.1.6)."""

    def __init__(self, seed):
        if len(seed) != 32:
            raise ValueError("seed")
        h = sha512(seed).digest()
        a = bytearray(h[:32])
        a[0] &= 248
        a[31] &= 127
        a[31] |= 64
        self._a = int.from_bytes(a, "little")
        self._prefix = h[32:]
        self.public = _encode(_mul2(_B, self._a, _IDENT, 0))

    def sign(self, msg):
        r = _h_scalar(self._prefix, msg)
        rb = _encode(_mul2(_B, r, _IDENT, 0))
        k = _h_scalar(rb, self.public, msg)
        s = (r + k * self._a) % L
        return rb + s.to_bytes(32, "little")
