"""Ed25519 key files of the repository tool: ``NAME.key`` (PKCS#8 PEM, 0600) + ``NAME.pub``.

The same key file serves TUF roles (through a securesystemslib ``CryptoSigner``) and the
Director's instruction key (raw seed for pynacl). Offline keys (root) belong on separate media:
the tool only needs them for ``init``, ``rotate`` and ``sign``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from otalink.host.fsutil import write_atomic
from securesystemslib.signer._crypto_signer import CryptoSigner  # re-exported implicitly only
from securesystemslib.signer._key import SSlibKey


@dataclass(frozen=True)
class KeyPair:
    """A loaded private key: TUF signer + raw ed25519 bytes."""

    name: str
    signer: CryptoSigner
    public: SSlibKey
    seed: bytes  # 32-byte ed25519 private seed
    public_raw: bytes  # 32-byte ed25519 public key

    @property
    def keyid(self) -> str:
        return self.public.keyid


def _sslib_key(pub: Ed25519PublicKey) -> SSlibKey:
    return SSlibKey.from_crypto(pub, scheme="ed25519")


def _pair(name: str, priv: Ed25519PrivateKey) -> KeyPair:
    pub = priv.public_key()
    sk = _sslib_key(pub)
    return KeyPair(
        name=name,
        signer=CryptoSigner(priv, sk),
        public=sk,
        seed=priv.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        ),
        public_raw=pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw),
    )


def generate(key_dir: Path, name: str, *, overwrite: bool = False) -> KeyPair:
    """Create ``key_dir/name.key`` and ``name.pub``; refuse to overwrite unless asked."""
    key_dir.mkdir(parents=True, exist_ok=True)
    path = key_dir / f"{name}.key"
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists")
    priv = Ed25519PrivateKey.generate()
    pem = priv.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_atomic(path, pem, mode=0o600)
    pair = _pair(name, priv)
    pub_doc = {"keyid": pair.keyid, "key": pair.public.to_dict(), "ed25519": pair.public_raw.hex()}
    write_atomic(key_dir / f"{name}.pub", json.dumps(pub_doc, indent=1).encode())
    return pair


def key_path(path: Path | str) -> Path:
    """The file of a key argument: the path as given if it exists, else with ``.key`` added."""
    p = Path(path)
    if not p.exists() and p.suffix != ".key":
        p = p.with_name(p.name + ".key")
    return p


def load(path: Path | str) -> KeyPair:
    """Load a private key file (PEM or hex seed: ``otalink.host.keys.load_private_key``; a bare
    name gets the ``.key`` suffix)."""
    from otalink.host.keys import BadKeyError, load_private_key

    p = key_path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such key file")
    try:
        seed = load_private_key(p)
    except BadKeyError as exc:
        raise ValueError(str(exc)) from exc
    return _pair(p.stem, Ed25519PrivateKey.from_private_bytes(seed))


def load_public(path: Path | str) -> SSlibKey:
    """Load a public key file (``.pub``) or derive it from a ``.key`` file."""
    p = Path(path)
    if p.suffix == ".key":
        return load(p).public
    if p.suffix != ".pub":
        p = p.with_name(p.name + ".pub")
    doc = json.loads(p.read_text())
    return SSlibKey.from_dict(doc["keyid"], dict(doc["key"]))


def public_raw(key: SSlibKey) -> bytes:
    """Raw 32-byte ed25519 public key of an SSlibKey."""
    return bytes.fromhex(key.keyval["public"])


def ensure_private_perms(path: Path) -> None:
    """Best effort: private key files readable by the owner only."""
    os.chmod(path, 0o600)
