"""Ed25519 key helpers for the host and tests (pynacl): generation, keyid, hex, signing.

The ECU side (``otalink.device.ed25519``) verifies and signs the same bytes; these helpers give
the host one place to make Director instruction keys and ECU report keys and to name them by
keyid (the first 8 bytes of SHA-256 of the 32-byte public key, as in docs/protocol.md).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nacl.exceptions
import nacl.signing

SEED_LEN = 32
PUBLIC_LEN = 32
SIG_LEN = 64
KEYID_LEN = 8


class BadKeyError(ValueError):
    """A key, seed or signature of the wrong shape (stable code ``bad_key``)."""

    code = "bad_key"


def keyid(public: bytes) -> bytes:
    """The 8-byte keyid of an ed25519 public key: SHA-256(public)[:8]."""
    if len(public) != PUBLIC_LEN:
        raise BadKeyError(f"public key must be {PUBLIC_LEN} bytes, got {len(public)}")
    return hashlib.sha256(public).digest()[:KEYID_LEN]


def public_key(seed: bytes) -> bytes:
    """The public key of a 32-byte seed."""
    return bytes(_signing_key(seed).verify_key)


def sign(seed: bytes, message: bytes) -> bytes:
    """The 64-byte ed25519 signature of ``message`` (exact bytes) by ``seed``."""
    return bytes(_signing_key(seed).sign(message).signature)


def verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """True iff ``signature`` is a valid signature of ``message`` by ``public``."""
    if len(public) != PUBLIC_LEN or len(signature) != SIG_LEN:
        return False
    try:
        nacl.signing.VerifyKey(public).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError):
        return False
    return True


def from_hex(text: str, length: int) -> bytes:
    """Parse a hex string of exactly ``length`` bytes."""
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError as exc:
        raise BadKeyError(f"not hex: {exc}") from exc
    if len(raw) != length:
        raise BadKeyError(f"expected {length} bytes, got {len(raw)}")
    return raw


@dataclass(frozen=True)
class KeyPair:
    """An ed25519 key: the 32-byte seed and what derives from it."""

    seed: bytes

    @classmethod
    def generate(cls) -> KeyPair:
        """A fresh random key (os.urandom via libsodium)."""
        return cls(bytes(nacl.signing.SigningKey.generate()))

    @classmethod
    def from_seed_hex(cls, text: str) -> KeyPair:
        return cls(from_hex(text, SEED_LEN))

    @property
    def public(self) -> bytes:
        return public_key(self.seed)

    @property
    def keyid(self) -> bytes:
        return keyid(self.public)

    @property
    def seed_hex(self) -> str:
        return self.seed.hex()

    @property
    def public_hex(self) -> str:
        return self.public.hex()

    def sign(self, message: bytes) -> bytes:
        return sign(self.seed, message)

    def signature_entry(self, message: bytes) -> list[bytes]:
        """``[keyid, sig]`` as BEGIN's ``sigs`` array carries it."""
        return [self.keyid, self.sign(message)]


def save_seed(path: Path, seed: bytes) -> None:
    """Write a seed as hex, atomically (temp + fsync + rename), mode 0600."""
    _signing_key(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".key-")
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (seed.hex() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def load_seed(path: Path) -> bytes:
    """Read a hex seed written by :func:`save_seed`."""
    return from_hex(path.read_text(), SEED_LEN)


def _signing_key(seed: bytes) -> nacl.signing.SigningKey:
    if len(seed) != SEED_LEN:
        raise BadKeyError(f"seed must be {SEED_LEN} bytes, got {len(seed)}")
    return nacl.signing.SigningKey(seed)
