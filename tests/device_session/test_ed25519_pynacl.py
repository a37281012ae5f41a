"""The MicroPython ed25519 agrees with libsodium (pynacl) on random keys and messages.

Hypothesis draws batches of keys/messages plus tampered variants; one MicroPython process
verifies and signs a whole batch, and every answer is compared with pynacl's.
"""

from __future__ import annotations

from pathlib import Path

import nacl.exceptions
import nacl.signing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.device_session._mp import HERE, run_mp

L = 2**252 + 27742317777372353535851937790883648493


def _nacl_ok(pub: bytes, msg: bytes, sig: bytes) -> bool:
    try:
        nacl.signing.VerifyKey(pub).verify(msg, sig)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError):
        return False
    return True


def _hx(b: bytes) -> str:
    return b.hex() or "-"


case = st.tuples(
    st.binary(min_size=32, max_size=32),  # seed
    st.binary(max_size=600),  # message (instructions are <= 512 bytes)
    st.integers(min_value=0, max_value=4),  # tamper: 0 none, 1 msg, 2 R, 3 S, 4 S+L
    st.integers(min_value=0, max_value=10**6),  # where to tamper
)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(case, min_size=15, max_size=25))
def test_verify_and_sign_match_pynacl(
    micropython: str, mpy_tree: Path, tmp_path_factory: object, batch: list
) -> None:
    lines: list[str] = []
    expect_v: list[bool] = []
    expect_s: list[tuple[str, str]] = []
    # one untampered case always: a batch drawn all-tampered must still test acceptance
    batch = [(batch[0][0], batch[0][1], 0, 0), *batch]
    for seed, msg, tamper, where in batch:
        sk = nacl.signing.SigningKey(seed)
        pub = bytes(sk.verify_key)
        sig = bytearray(sk.sign(msg).signature)
        m = bytearray(msg)
        if tamper == 1 and m:
            m[where % len(m)] ^= 1 << (where % 8)
        elif tamper == 2:
            sig[where % 32] ^= 1 << (where % 8)
        elif tamper == 3:
            sig[32 + where % 32] ^= 1 << (where % 8)
        elif tamper == 4:
            s = int.from_bytes(sig[32:], "little") + L
            if s < 2**256:
                sig[32:] = s.to_bytes(32, "little")
        lines.append(f"v {_hx(pub)} {_hx(bytes(m))} {_hx(bytes(sig))}")
        expect_v.append(_nacl_ok(pub, bytes(m), bytes(sig)))
        lines.append(f"s {_hx(seed)} {_hx(msg)}")
        expect_s.append((pub.hex(), sk.sign(msg).signature.hex()))
    d = tmp_path_factory.mktemp("ed")  # type: ignore[attr-defined]
    (d / "cases.txt").write_text("\n".join(lines) + "\n")
    out = run_mp(micropython, mpy_tree, HERE / "ed25519_batch_mp.py", str(d / "cases.txt"))
    got = out.split("\n")
    vi = si = 0
    for i, line in enumerate(lines):
        if line.startswith("v"):
            assert got[i] == ("1" if expect_v[vi] else "0"), (line, got[i])
            vi += 1
        else:
            assert tuple(got[i].split()) == expect_s[si], line
            si += 1
    # the batch exercised both outcomes often enough to mean something
    assert any(expect_v)


def test_verification_module_constants_are_ed25519s() -> None:
    # ed25519v.py copies the curve constants it uses (private consts are folded into each
    # module's code on the device, so they cannot be shared); under CPython const() is the
    # identity and both modules' names are there to compare
    from otalink.device import ed25519, ed25519v

    for name in ("_P", "_L", "_D", "_SQRT_M1", "_B"):
        assert getattr(ed25519v, name) == getattr(ed25519, name), name
    assert ed25519v._L == L
    # and ed25519.verify (its __getattr__) is ed25519v's: the signer's module alone signs
    seed = bytes(range(32))
    sig = ed25519.SigningKey(seed).sign(b"m")
    pub = bytes(nacl.signing.SigningKey(seed).verify_key)
    assert sig == nacl.signing.SigningKey(seed).sign(b"m").signature
    assert ed25519.verify(pub, b"m", sig) and not ed25519.verify(pub, b"n", sig)
    assert ed25519.verify is ed25519v.verify
