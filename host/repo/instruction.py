"""Per-ECU install instructions: the CBOR array the Director signs and the ECU verifies.

Layout (docs/protocol.md): ``[fmt=1, ecu_id, hw_id, version, release_counter, image_len,
sha256(32), issued, expires, target, kind]``. Signatures are ed25519 by the Director's
*instruction* key(s) over exactly these bytes; ``keyid = sha256(pubkey)[:8]``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cbor2
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

INSTRUCTION_FORMAT = 1
MAX_INSTRUCTION_LEN = 512  # BEGIN carries at most this many bytes


@dataclass(frozen=True)
class Instruction:
    """Decoded fields of an install instruction."""

    ecu_id: str
    hw_id: str
    version: str
    release_counter: int
    image_len: int
    sha256: bytes
    issued: int
    expires: int
    target: str
    kind: int  # 0 bundle, 1 firmware

    def as_array(self) -> list[object]:
        return [
            INSTRUCTION_FORMAT,
            self.ecu_id,
            self.hw_id,
            self.version,
            self.release_counter,
            self.image_len,
            self.sha256,
            self.issued,
            self.expires,
            self.target,
            self.kind,
        ]


def encode_instruction(ins: Instruction) -> bytes:
    """The exact bytes that are signed (protocol codec when present, else canonical cbor2)."""
    try:  # the protocol engineer's codec is the reference encoding
        import importlib

        enc = getattr(
            importlib.import_module("otalink.protocol.messages"), "encode_instruction", None
        )
    except ImportError:
        enc = None
    if enc is not None:
        try:
            data = enc(*ins.as_array()[1:])
            if isinstance(data, bytes | bytearray | memoryview):
                out = bytes(data)
                if cbor2.loads(out) == ins.as_array():
                    return out
        except Exception:  # fall back to the documented encoding below
            pass
    data = cbor2.dumps(ins.as_array())
    if len(data) > MAX_INSTRUCTION_LEN:
        raise ValueError(f"instruction is {len(data)} bytes, over {MAX_INSTRUCTION_LEN}")
    return data


def decode_instruction(data: bytes) -> Instruction:
    """Parse instruction bytes; ``ValueError`` if they are not a format-1 instruction."""
    if len(data) > MAX_INSTRUCTION_LEN:
        raise ValueError("instruction too long")
    try:
        arr = cbor2.loads(data)
    except Exception as exc:
        raise ValueError(f"instruction is not CBOR: {exc}") from exc
    if not isinstance(arr, list) or len(arr) != 11 or arr[0] != INSTRUCTION_FORMAT:
        raise ValueError("instruction is not a format-1 array of 11 fields")
    types = (int, str, str, str, int, int, bytes, int, int, str, int)
    for value, typ in zip(arr, types, strict=True):
        if not isinstance(value, typ) or isinstance(value, bool):
            raise ValueError("instruction field has the wrong type")
    if len(arr[6]) != 32:
        raise ValueError("instruction sha256 is not 32 bytes")
    if cbor2.dumps(arr) != data:
        raise ValueError("instruction is not canonically encoded")
    _device_would_accept(data)
    return Instruction(*arr[1:])


def _device_would_accept(data: bytes) -> None:
    """Run the ECU's own decoder (shared protocol code) so the host refuses what ECUs would."""
    import importlib

    try:
        messages = importlib.import_module("otalink.protocol.messages")
    except ImportError:
        return
    dec = getattr(messages, "decode_instruction", None)
    if dec is None:
        return
    try:
        dec(data)
    except Exception as exc:
        raise ValueError(f"the ECU would reject this instruction: {exc!r}") from exc


def keyid(public_key: bytes) -> bytes:
    """8-byte key id of an ed25519 public key."""
    return hashlib.sha256(public_key).digest()[:8]


def sign_instruction(data: bytes, seed: bytes) -> tuple[bytes, bytes]:
    """(keyid, signature) of ``data`` by the ed25519 key with this 32-byte seed."""
    sk = SigningKey(seed)
    return keyid(bytes(sk.verify_key)), sk.sign(data).signature


def verify_instruction(
    data: bytes, sigs: list[tuple[bytes, bytes]], public_keys: list[bytes], threshold: int = 1
) -> int:
    """Number of distinct trusted keys with a valid signature; ``ValueError`` if below threshold."""
    by_id = {keyid(pk): pk for pk in public_keys}
    good: set[bytes] = set()
    for kid, sig in sigs:
        pk = by_id.get(bytes(kid))
        if pk is None or len(sig) != 64:
            continue
        try:
            VerifyKey(pk).verify(data, bytes(sig))
        except BadSignatureError:
            continue
        good.add(bytes(kid))
    if len(good) < threshold:
        raise ValueError(f"instruction signed by {len(good)}/{threshold} trusted keys")
    return len(good)
