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
# Speed: field elements are ints reduced mod p only after multiplications (sums/differences stay
# lazily unreduced; Python's % makes negatives canonical). Points are extended twisted-Edwards
# coordinates (X, Y, Z, T) [Hisil-Wong-Carter-Dawson 2008]: doubling 4M+4S, mixed addition with a
# precomputed affine "niels" point 7M, addition with a cached point 8M. Verification is a Straus /
# Shamir double-scalar multiplication over width-5 NAFs: one shared doubling chain for both
# scalars; odd multiples B..15B are computed once per process (lazily), A..15A per verification.
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
    # General extended addition (a = -1), used only for table building.
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


def _cached(p):
    # (Y-X, Y+X, 2Z, 2dT): the part of an addition that depends only on the second point.
    X, Y, Z, T = p
    return ((Y - X) % P, (Y + X) % P, 2 * Z % P, T * D2 % P)


def _niels(p):
    # Affine cached form (Z = 1): (y-x, y+x, 2dxy). One inversion per point, done once.
    X, Y, Z, _ = p
    zi = pow(Z, P - 2, P)
    x = X * zi % P
    y = Y * zi % P
    return ((y - x) % P, (y + x) % P, x * y % P * D2 % P)


def _add_cached(p, q, neg):
    X1, Y1, Z1, T1 = p
    ym, yp, z2, t2d = q
    if neg:  # -(x, y) = (-x, y): swaps Y-X and Y+X, negates T
        ym, yp, t2d = yp, ym, -t2d
    a = (Y1 - X1) * ym % P
    b = (Y1 + X1) * yp % P
    c = T1 * t2d % P
    d = Z1 * z2 % P
    e = b - a
    f = d - c
    g = d + c
    h = b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _add_niels(p, q, neg):
    X1, Y1, Z1, T1 = p
    ym, yp, t2d = q
    if neg:
        ym, yp, t2d = yp, ym, -t2d
    a = (Y1 - X1) * ym % P
    b = (Y1 + X1) * yp % P
    c = T1 * t2d % P
    d = 2 * Z1
    e = b - a
    f = d - c
    g = d + c
    h = b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _odd_multiples(p):
    # [p, 3p, 5p, ..., 15p] in extended coordinates.
    p2 = _dbl(p)
    out = [p]
    for _ in range(7):
        p = _add(p, p2)
        out.append(p)
    return out


_btab = None


def _b_table():
    global _btab
    if _btab is None:
        _btab = [_niels(q) for q in _odd_multiples(_B)]
    return _btab


def _naf(k):
    # Width-5 NAF of a non-negative scalar < 2^253, as a bytearray of signed digits (two's
    # complement in a byte) from least significant; length 256.
    out = bytearray(256)
    i = 0
    while k:
        if k & 1:
            d = k & 31
            if d > 16:
                d -= 32
            k -= d
            out[i] = d & 0xFF
        k >>= 1
        i += 1
    return out


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


def _scalarmult_base(k):
    t = _b_table()
    n = _naf(k)
    r = _IDENT
    started = False
    for i in range(255, -1, -1):
        if started:
            r = _dbl(r)
        d = n[i]
        if d:
            if d < 128:
                r = _add_niels(r, t[d >> 1], False)
            else:
                r = _add_niels(r, t[(256 - d) >> 1], True)
            started = True
    return r


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
    # Q = [s]B + [k](-A): Straus with a shared doubling chain.
    tb = _b_table()
    ta = [_cached(q) for q in _odd_multiples(a)]
    ns = _naf(s)
    nk = _naf(k)
    q = _IDENT
    started = False
    for i in range(255, -1, -1):
        if started:
            q = _dbl(q)
        d = ns[i]
        if d:
            if d < 128:
                q = _add_niels(q, tb[d >> 1], False)
            else:
                q = _add_niels(q, tb[(256 - d) >> 1], True)
            started = True
        d = nk[i]
        if d:
            # -A: the digit's sign is inverted
            if d < 128:
                q = _add_cached(q, ta[d >> 1], True)
            else:
                q = _add_cached(q, ta[(256 - d) >> 1], False)
            started = True
    return _encode(q) == rb


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
        self.public = _encode(_scalarmult_base(self._a))

    def sign(self, msg):
        r = _h_scalar(self._prefix, msg)
        rb = _encode(_scalarmult_base(r))
        k = _h_scalar(rb, self.public, msg)
        s = (r + k * self._a) % L
        return rb + s.to_bytes(32, "little")
