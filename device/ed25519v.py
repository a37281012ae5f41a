# Ed25519 verification (RFC 8032 5.1.7) for MicroPython, on ed25519.py's arithmetic: loaded for
# a BEGIN's instruction signatures (auth.py) and a signed command (commands.py), and dropped with
# them, so a signature alone (every HELLO's) never loads this code.
#
# verify(pub32, data, sig64) -> bool; verify_g(pub, data, sig): the same sliced (a generator
# yielding between the steps and every few bits of the multiplication; returns the bool).
#   Strict per RFC 8032 5.1.7, plus libsodium's extra rejections:
#   - S must be canonical (S < L), else reject (blocks S+L malleability);
#   - A and R must decode per 5.1.3: y < p (canonical), a square root exists, and "x = 0 with the
#     sign bit set" is rejected; so non-canonical point encodings fail;
#   - A and R of small order (the 8 torsion points) are rejected;
#   - the cofactorless equation [S]B == R + [k]A is checked, by computing [S]B + [k](-A) and
#     comparing its canonical encoding with the received R bytes. (Cofactorless matches
#     libsodium / pynacl, so both sides agree on every signature an honest signer can make.)
from otalink.device import ed25519

try:
    from micropython import const
except ImportError:  # CPython (tooling only)

    def const(x):
        return x


# ed25519.py's constants that verification uses (private consts there: folded into its code, so
# copied; tests/device_session/test_ed25519_pynacl.py checks them against ed25519.py's)
_P = const(2**255 - 19)
_L = const(2**252 + 27742317777372353535851937790883648493)
_D = const(37095705934669439343138083508754565189542113879843219016388785533085940283555)
_SQRT_M1 = const(19681161376707505956807079304988542015446066515923890162744021073123829784752)
_BX = const(15112221349535400772501151409588531511454012693041857206046113283949847762202)
_BY = const(46316835694926478169428394003475163141307993866256225615783033603165251855960)
_BT = const(46827403850823179245072216630277197565144205554125654976674165829533817101731)
_B = const((_BX, _BY, 1, _BT))


def _decode(s):
    # RFC 8032 5.1.3, strict; returns an extended point or None.
    if len(s) != 32:
        return None
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= _P:
        return None  # non-canonical y
    yy = y * y % _P
    u = yy - 1
    v = _D * yy + 1
    v3 = v * v % _P * v % _P
    x = u * v3 % _P * pow(u * v3 % _P * v3 % _P * v % _P, (_P - 5) // 8, _P) % _P
    vxx = v * x % _P * x % _P
    if vxx == u % _P:
        pass
    elif vxx == (-u) % _P:
        x = x * _SQRT_M1 % _P
    else:
        return None  # not on the curve
    if x == 0 and sign:
        return None  # "negative zero": a second encoding of the same point
    if (x & 1) != sign:
        x = _P - x
    return (x, y, 1, x * y % _P)


def _small_order(p):
    # [8]p == identity  <=>  X == 0 and Y == Z after three doublings.
    q = ed25519._dbl(ed25519._dbl(ed25519._dbl(p)))
    return q[0] % _P == 0 and (q[1] - q[2]) % _P == 0


def verify_g(pub, data, sig):
    # verify() as a generator (it yields between slices; returns the bool)
    if len(pub) != 32 or len(sig) != 64:
        return False
    rb = bytes(sig[:32])
    s = int.from_bytes(sig[32:], "little")
    if s >= _L:
        return False
    # a slice between the steps that take milliseconds each (a decode and an encode: one modular
    # power each; the SHA-512 of the message), as between the multiplication's bits
    a = _decode(pub)
    if a is None or _small_order(a):
        return False
    yield
    r = _decode(rb)
    if r is None or _small_order(r):
        return False
    yield
    k = ed25519._h_scalar(rb, pub, data)
    yield
    # Q = [s]B + [k](-A); -(X, Y, Z, T) = (-X, Y, Z, -T)
    q = yield from ed25519._mul2(_B, s, (_P - a[0], a[1], 1, _P - a[3]), k)
    yield
    return ed25519.encode(q) == rb


def verify(pub, data, sig):
    """True iff sig (64 bytes) is a valid strict ed25519 signature of data by pub (32 bytes)."""
    return ed25519.run(verify_g(pub, data, sig))
