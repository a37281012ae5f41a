# SHA-512 (FIPS 180-4) in pure Python for MicroPython, whose hashlib has no sha512.
# Only ed25519 needs it (messages of a few hundred bytes), so it favours small code and
# few allocations over speed: one 80-word schedule list reused per object, a 128-byte
# block buffer, words as (big) ints masked to 64 bits.
#
# API mirrors hashlib: sha512(data=b"").update(data); .digest() -> bytes(64).
import struct
from binascii import unhexlify

_M = 0xFFFFFFFFFFFFFFFF

# Round constants as 640 raw bytes (not 80 boxed big ints: ~2.5 KB less heap while loaded),
# read with struct.unpack_from per round.
_K = unhexlify(
    "428a2f98d728ae227137449123ef65cdb5c0fbcfec4d3b2fe9b5dba58189dbbc"
    "3956c25bf348b53859f111f1b605d019923f82a4af194f9bab1c5ed5da6d8118"
    "d807aa98a303024212835b0145706fbe243185be4ee4b28c550c7dc3d5ffb4e2"
    "72be5d74f27b896f80deb1fe3b1696b19bdc06a725c71235c19bf174cf692694"
    "e49b69c19ef14ad2efbe4786384f25e30fc19dc68b8cd5b5240ca1cc77ac9c65"
    "2de92c6f592b02754a7484aa6ea6e4835cb0a9dcbd41fbd476f988da831153b5"
    "983e5152ee66dfaba831c66d2db43210b00327c898fb213fbf597fc7beef0ee4"
    "c6e00bf33da88fc2d5a79147930aa72506ca6351e003826f142929670a0e6e70"
    "27b70a8546d22ffc2e1b21385c26c9264d2c6dfc5ac42aed53380d139d95b3df"
    "650a73548baf63de766a0abb3c77b2a881c2c92e47edaee692722c851482353b"
    "a2bfe8a14cf10364a81a664bbc423001c24b8b70d0f89791c76c51a30654be30"
    "d192e819d6ef5218d69906245565a910f40e35855771202a106aa07032bbd1b8"
    "19a4c116b8d2d0c81e376c085141ab532748774cdf8eeb9934b0bcb5e19b48a8"
    "391c0cb3c5c95a634ed8aa4ae3418acb5b9cca4f7763e373682e6ff3d6b2b8a3"
    "748f82ee5defb2fc78a5636f43172f6084c87814a1f0ab728cc702081a6439ec"
    "90befffa23631e28a4506cebde82bde9bef9a3f7b2c67915c67178f2e372532b"
    "ca273eceea26619cd186b8c721c0c207eada7dd6cde0eb1ef57d4f7fee6ed178"
    "06f067aa72176fba0a637dc5a2c898a6113f9804bef90dae1b710b35131c471b"
    "28db77f523047d8432caab7b40c724933c9ebe0a15c9bebc431d67c49c100d4c"
    "4cc5d4becb3e42b6597f299cfc657e2a5fcb6fab3ad6faec6c44198c4a475817"
)

_IV = (
    0x6A09E667F3BCC908, 0xBB67AE8584CAA73B, 0x3C6EF372FE94F82B, 0xA54FF53A5F1D36F1,
    0x510E527FADE682D1, 0x9B05688C2B3E6C1F, 0x1F83D9ABFB41BD6B, 0x5BE0CD19137E2179,
)  # fmt: skip


class sha512:
    def __init__(self, data=None):
        self._h = list(_IV)
        self._buf = bytearray(128)
        self._n = 0  # bytes waiting in _buf
        self._len = 0  # total message bytes
        self._w = [0] * 80
        if data:
            self.update(data)

    def _block(self, blk):
        w = self._w
        w[0:16] = struct.unpack(">16Q", blk)
        M = _M
        for i in range(16, 80):
            x = w[i - 15]
            y = w[i - 2]
            # Rotations as shift pairs; the halves never overlap, so XOR equals OR and one
            # final mask replaces one per rotation.
            s0 = ((x >> 1) ^ (x >> 8) ^ (x >> 7) ^ (x << 63) ^ (x << 56)) & M
            s1 = ((y >> 19) ^ (y >> 61) ^ (y >> 6) ^ (y << 45) ^ (y << 3)) & M
            w[i] = (w[i - 16] + s0 + w[i - 7] + s1) & M
        h = self._h
        a, b, c, d, e, f, g, hh = h
        K = _K
        unpack = struct.unpack_from
        for i in range(80):
            t1 = (
                hh
                + (((e >> 14) ^ (e >> 18) ^ (e >> 41) ^ (e << 50) ^ (e << 46) ^ (e << 23)) & M)
                + ((e & f) ^ ((e ^ M) & g))
                + unpack(">Q", K, i << 3)[0]
                + w[i]
            )
            t2 = (((a >> 28) ^ (a >> 34) ^ (a >> 39) ^ (a << 36) ^ (a << 30) ^ (a << 25)) & M) + (
                (a & (b | c)) | (b & c)
            )
            hh = g
            g = f
            f = e
            e = (d + t1) & M
            d = c
            c = b
            b = a
            a = (t1 + t2) & M
        h[0] = (h[0] + a) & M
        h[1] = (h[1] + b) & M
        h[2] = (h[2] + c) & M
        h[3] = (h[3] + d) & M
        h[4] = (h[4] + e) & M
        h[5] = (h[5] + f) & M
        h[6] = (h[6] + g) & M
        h[7] = (h[7] + hh) & M

    def update(self, data):
        mv = memoryview(data)
        n = len(mv)
        self._len += n
        buf = self._buf
        pos = 0
        if self._n:
            take = min(128 - self._n, n)
            buf[self._n : self._n + take] = mv[:take]
            self._n += take
            pos = take
            if self._n < 128:
                return self
            self._block(buf)
            self._n = 0
        while n - pos >= 128:
            self._block(mv[pos : pos + 128])
            pos += 128
        if pos < n:
            buf[0 : n - pos] = mv[pos:]
            self._n = n - pos
        return self

    def digest(self):
        # Finalise a copy so the object can keep absorbing (hashlib semantics).
        c = sha512()
        c._h = list(self._h)
        c._buf[:] = self._buf
        c._n = self._n
        bits = self._len * 8
        n = c._n
        buf = c._buf
        buf[n] = 0x80
        n += 1
        if n > 112:
            for i in range(n, 128):
                buf[i] = 0
            c._block(buf)
            n = 0
        for i in range(n, 120):
            buf[i] = 0
        struct.pack_into(">Q", buf, 120, bits & _M)
        c._block(buf)
        return struct.pack(">8Q", *c._h)
