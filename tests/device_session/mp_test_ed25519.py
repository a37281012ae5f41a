# MicroPython-side tests of the pure-Python ed25519 / SHA-512 (run under the unix port by
# tests/mpyrun.py). RFC 8032 section 7.1 vectors, FIPS 180 SHA-512 vectors, and the strictness
# cases: non-canonical S (S + L), non-canonical / off-curve point encodings, small-order keys.
from binascii import hexlify, unhexlify

from otalink.device import ed25519
from otalink.device.ed25519 import sha512

_VECTORS = (
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
        "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
        "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
)

_L = 2**252 + 27742317777372353535851937790883648493
_P = 2**255 - 19


def _h(s):
    return unhexlify(s)


def test_sha512_fips_vectors():
    assert hexlify(sha512(b"abc").digest()) == (
        b"ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
        b"2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
    )
    assert hexlify(sha512(b"").digest()) == (
        b"cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
        b"47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
    )
    # 112-byte two-block message, fed in uneven pieces (buffering across block edges)
    m = (
        b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
        b"hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"
    )
    h = sha512()
    for i in range(0, len(m), 7):
        h.update(m[i : i + 7])
    assert hexlify(h.digest()) == (
        b"8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018"
        b"501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909"
    )
    # 1000 bytes (eight blocks: the 16-word schedule ring wraps many times), every byte value;
    # the digest is CPython's hashlib.sha512
    assert hexlify(sha512((bytes(range(256)) * 4)[:1000]).digest()) == (
        b"6cd2eda9bf9c0597129029b0054b81e433f6b8b7b499a75eb705efd74bac1941"
        b"49835b1d1a14c48be696e4d588456d512a22eae7aa1b57be2b56eae7d35e08cb"
    )


def test_rfc8032_vectors_sign_and_verify():
    for sk, pk, msg, sig in _VECTORS:
        key = ed25519.SigningKey(_h(sk))
        assert key.public == _h(pk)
        assert key.sign(_h(msg)) == _h(sig)
        assert ed25519.verify(_h(pk), _h(msg), _h(sig))


def test_wrong_message_or_key_rejected():
    _sk, pk, msg, sig = _VECTORS[1]
    assert not ed25519.verify(_h(pk), b"\x73", _h(sig))
    assert not ed25519.verify(_h(_VECTORS[2][1]), _h(msg), _h(sig))
    bad = bytearray(_h(sig))
    bad[5] ^= 1
    assert not ed25519.verify(_h(pk), _h(msg), bytes(bad))


def test_non_canonical_s_rejected():
    # S + L is the classic malleated twin: same point equation, must be refused (RFC 8032 5.1.7)
    _sk, pk, msg, sig = _VECTORS[0]
    s = int.from_bytes(_h(sig)[32:], "little")
    assert s + _L < 2**256
    mall = _h(sig)[:32] + (s + _L).to_bytes(32, "little")
    assert not ed25519.verify(_h(pk), _h(msg), mall)
    assert ed25519.verify(_h(pk), _h(msg), _h(sig))


def test_non_canonical_point_encodings_rejected():
    _sk, pk, msg, sig = _VECTORS[0]
    # y >= p: y + p for a small y still fits in 255 bits -> a second encoding of a point
    y1 = (1 + _P).to_bytes(32, "little")
    assert ed25519._decode(y1) is None
    # "negative zero": x = 0 (y = 1) with the sign bit set
    neg0 = bytearray((1).to_bytes(32, "little"))
    neg0[31] |= 0x80
    assert ed25519._decode(bytes(neg0)) is None
    # y = 2 is not on the curve (no square root)
    assert ed25519._decode((2).to_bytes(32, "little")) is None
    # the same point encodings in R or A make verification fail
    assert not ed25519.verify(bytes(neg0), _h(msg), _h(sig))
    assert not ed25519.verify(_h(pk), _h(msg), y1 + _h(sig)[32:])
    # R with its y replaced by y + p (non-canonical twin of a valid R, when y + p < 2^255)
    r = int.from_bytes(_h(sig)[:32], "little")
    ry = r & ((1 << 255) - 1)
    if ry + _P < 2**255:
        twin = ((r >> 255) << 255 | (ry + _P)).to_bytes(32, "little")
        assert not ed25519.verify(_h(pk), _h(msg), twin + _h(sig)[32:])


def test_small_order_key_rejected():
    # identity (y = 1) and the order-2 point (y = -1) as public key; with S = 0 and R = identity
    # the cofactorless equation would hold for any message, so these must be refused outright.
    ident = (1).to_bytes(32, "little")
    order2 = (_P - 1).to_bytes(32, "little")
    zero_s = bytes(32)
    for a in (ident, order2):
        assert not ed25519.verify(a, b"any message", ident + zero_s)
    assert ed25519._small_order(ed25519._decode(order2))
    assert not ed25519._small_order(ed25519._decode(_h(_VECTORS[0][1])))


def test_bad_lengths_rejected():
    _sk, pk, msg, sig = _VECTORS[0]
    assert not ed25519.verify(_h(pk)[:31], _h(msg), _h(sig))
    assert not ed25519.verify(_h(pk), _h(msg), _h(sig)[:63])
