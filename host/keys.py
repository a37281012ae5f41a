"""Ed25519 key helpers for the host and tests (pynacl): generation, keyid, hex, signing, files.

The ECU side (``otalink.device.ed25519``) verifies and signs the same bytes; these helpers give
the host one place to make Director instruction keys, command keys and ECU report keys and to
name them by keyid (the first 8 bytes of SHA-256 of the 32-byte public key, docs/protocol.md).

Key files: every command that takes a key reads it through :func:`load_private_key` /
:func:`load_public_key`, so each reads what the others write (docs/hil.md "Keys"):

- a private key: PKCS#8 PEM (``otalink repo keygen`` writes ``NAME.key``), a hex seed
  (64 hex digits; ``otalink device provision`` writes ``<ecu_id>.seed``, :func:`save_seed`) or
  a raw 32-byte seed (the board's ``keys/ecu_key.bin``);
- a public key: hex on the command line, or a file: any private key file (its public key), a PEM
  public key, ``NAME.pub`` of ``otalink repo keygen``, an ECU record (``otalink-ecu/1``) or hex.
  A hex file is a seed when its name ends in ``.seed`` or ``.key`` (the names the tools write
  private keys under), otherwise a public key. A raw 32-byte file is no public key (a seed or a
  public key? the bytes cannot tell).
"""

from __future__ import annotations

import hashlib
import json
import os
import string
from dataclasses import dataclass
from pathlib import Path

import nacl.exceptions
import nacl.signing
from otalink.host.errors import ConfigError
from otalink.host.fsutil import PRIVATE, write_atomic

SEED_LEN = 32
PUBLIC_LEN = 32
SIG_LEN = 64
KEYID_LEN = 8
PRIVATE_SUFFIXES = (".seed", ".key")  # a hex file named so holds a seed, not a public key
_MAX_KEY_FILE = 1 << 16

#: The development command key: a fixed, published seed (as the demo's other dev keys), trusted
#: by the ECUs that ``otalink.host.sim.ecusim.make_ecu_config`` writes unless told otherwise
#: (a production ECU refuses its commands with E_CMD_AUTH).
DEV_COMMAND_SEED = hashlib.sha256(b"otalink development command key v1").digest()


class BadKeyError(ConfigError, ValueError):
    """A key, seed or signature of the wrong shape, or a key file that cannot be read (a
    ``ConfigError``; still a ``ValueError`` for the callers that parse values)."""

    code = "config.bad_key"


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

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> KeyPair:
        """The key of a private key file (PEM or hex seed): :func:`load_private_key`."""
        return cls(load_private_key(path))

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
    write_atomic(path, (seed.hex() + "\n").encode(), mode=PRIVATE)


def load_seed(path: Path) -> bytes:
    """Read a private key file (hex seed or PEM): :func:`load_private_key`."""
    return load_private_key(path)


def _read_key_file(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_KEY_FILE + 1)
    except OSError as exc:
        raise BadKeyError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if len(data) > _MAX_KEY_FILE:
        raise BadKeyError(f"{path}: not a key file (larger than {_MAX_KEY_FILE} bytes)")
    return data


def _hex_key(text: str) -> bytes | None:
    """32 bytes from 64 hex digits (surrounding whitespace allowed), else None."""
    t = text.strip()
    if len(t) != 2 * SEED_LEN or not all(c in string.hexdigits for c in t):
        return None
    return bytes.fromhex(t)


def _pem(path: Path, data: bytes) -> tuple[bytes | None, bytes]:
    """(seed or None, public) of a PEM ed25519 key (private PKCS#8 or public SPKI)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    raw = serialization.Encoding.Raw
    try:
        if b"PRIVATE KEY-----" in data:
            priv = serialization.load_pem_private_key(data, password=None)
            if not isinstance(priv, ed25519.Ed25519PrivateKey):
                raise BadKeyError(f"{path}: a PEM private key, but not ed25519")
            seed = priv.private_bytes(
                raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
            )
            return seed, public_key(seed)
        pub = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:  # malformed, or encrypted (needs a password)
        raise BadKeyError(f"{path}: unreadable PEM key: {exc}") from exc
    if not isinstance(pub, ed25519.Ed25519PublicKey):
        raise BadKeyError(f"{path}: a PEM public key, but not ed25519")
    return None, pub.public_bytes(raw, serialization.PublicFormat.Raw)


def _json_public(path: Path, text: str) -> bytes:
    """The public key of ``otalink repo keygen``'s NAME.pub or of an ECU record."""
    try:
        doc = json.loads(text)
        if "ed25519" in doc:  # NAME.pub: {"keyid", "key": {securesystemslib}, "ed25519": hex}
            hexkey = doc["ed25519"]
        elif doc.get("format") == "otalink-ecu/1":  # <registry>/ecus/<ecu_id>.json
            hexkey = doc["public_key"]
        elif doc["key"]["keytype"] == "ed25519":
            hexkey = doc["key"]["keyval"]["public"]
        else:
            raise ValueError("not an ed25519 key")
        return from_hex(str(hexkey), PUBLIC_LEN)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadKeyError(f"{path}: not a public key file: {exc}") from exc


def load_private_key(path: str | os.PathLike[str]) -> bytes:
    """The 32-byte seed of a private key file: PKCS#8 PEM, a hex seed or 32 raw bytes
    (BadKeyError otherwise)."""
    p = Path(path)
    data = _read_key_file(p)
    if len(data) == SEED_LEN:
        return data  # raw seed (64 hex digits or PEM are longer than 32 bytes)
    if b"-----BEGIN" in data:
        seed, _ = _pem(p, data)
        if seed is None:
            raise BadKeyError(f"{p}: a public key; a private key (PEM or hex seed) is needed")
        return seed
    text = _text(p, data)
    seed = _hex_key(text)
    if seed is None:
        if text.lstrip().startswith("{"):
            raise BadKeyError(f"{p}: a public key file; a private key (PEM or hex seed) is needed")
        raise BadKeyError(f"{p}: not a private key (PKCS#8 PEM or 64 hex digits of a seed)")
    return seed


def load_public_key(spec: str | os.PathLike[str]) -> bytes:
    """A 32-byte public key from hex or from a key file of any kind (see the module docstring)."""
    p = Path(spec)
    if not p.is_file():
        key = _hex_key(os.fspath(spec))
        if key is not None:
            return key
        if p.exists():
            raise BadKeyError(f"{p}: not a regular file")
        raise BadKeyError(f"{spec}: no such key file, and not 64 hex digits of a public key")
    data = _read_key_file(p)
    if b"-----BEGIN" in data:
        return _pem(p, data)[1]
    if len(data) == SEED_LEN and p.suffix in PRIVATE_SUFFIXES:
        return public_key(data)
    text = _text(p, data)
    if text.lstrip().startswith("{"):
        return _json_public(p, text)
    key = _hex_key(text)
    if key is None:
        raise BadKeyError(
            f"{p}: not a key file (PEM, hex, or the .pub JSON of `otalink repo keygen`)"
        )
    return public_key(key) if p.suffix in PRIVATE_SUFFIXES else key


def _text(path: Path, data: bytes) -> str:
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise BadKeyError(
            f'{path}: a binary file; key files are PEM or hex text (docs/hil.md "Keys")'
        ) from None


def _signing_key(seed: bytes) -> nacl.signing.SigningKey:
    if len(seed) != SEED_LEN:
        raise BadKeyError(f"seed must be {SEED_LEN} bytes, got {len(seed)}")
    return nacl.signing.SigningKey(seed)
