"""Per-ECU install instructions: the CBOR array the Director signs and the ECU verifies.

Layout (docs/protocol.md): ``[fmt=1, ecu_id, hw_id, version, release_counter, image_len,
sha256(32), issued, expires, target, kind]``; format 2 adds ``base_sha256(32)``: the one base
image a patch of this result may be applied to (delta updates: the ECU refuses a patch under a
format-1 instruction or against any other active image, E_BASE_MISMATCH). Signatures are
ed25519 by the Director's *instruction* key(s) over exactly these bytes;
``keyid = sha256(pubkey)[:8]`` (``host.keys``).

There is one codec for these bytes: the protocol's (``otalink.protocol.messages``), the same code
the ECU runs. The repository tool encodes with it before signing (``encode_instruction``), the
update client decodes and checks with it (``decode_instruction``, ``verify_instruction``), so
the host refuses exactly what an ECU would refuse.
"""

from __future__ import annotations

from dataclasses import dataclass

from otalink.host.keys import keyid, verify
from otalink.protocol import messages
from otalink.protocol.errors import ProtocolError

INSTRUCTION_FORMAT = 1
INSTRUCTION_FORMAT_DELTA = 2  # format 1 + base_sha256
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
    base_sha256: bytes | None = None  # format 2: the delta base a patch may be applied to

    def fields(self) -> tuple[str, str, str, int, int, bytes, int, int, str, int]:
        """The fields after ``fmt``, in wire order."""
        return (
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
        )


def encode_instruction(ins: Instruction) -> bytes:
    """The exact bytes that are signed (``ValueError`` if an ECU would refuse them)."""
    try:
        data = bytes(messages.encode_instruction(*ins.fields(), ins.base_sha256))
    except ProtocolError as exc:
        raise ValueError(f"the ECU would reject this instruction: {exc!r}") from exc
    if len(data) > MAX_INSTRUCTION_LEN:
        raise ValueError(f"instruction is {len(data)} bytes, over {MAX_INSTRUCTION_LEN}")
    return data


def decode_instruction(data: bytes) -> Instruction:
    """Parse instruction bytes; ``ValueError`` if they are not a canonical format-1 or format-2
    instruction that an ECU would accept."""
    if len(data) > MAX_INSTRUCTION_LEN:
        raise ValueError("instruction too long")
    try:
        arr = messages.decode_instruction(data)
    except ProtocolError as exc:
        raise ValueError(f"the ECU would reject this instruction: {exc!r}") from exc
    fields = list(arr[1:])
    fields[5] = bytes(fields[5])  # sha256
    if len(fields) > 10:
        fields[10] = bytes(fields[10])  # base_sha256
    ins = Instruction(*fields)
    # One encoding per instruction: what was signed must be what the codec writes.
    if bytes(messages.encode_instruction(*ins.fields(), ins.base_sha256)) != bytes(data):
        raise ValueError("instruction is not canonically encoded")
    return ins


def verify_instruction(
    data: bytes, sigs: list[tuple[bytes, bytes]], public_keys: list[bytes], threshold: int = 1
) -> int:
    """Number of distinct trusted keys with a valid signature; ``ValueError`` if below threshold."""
    by_id = {keyid(pk): pk for pk in public_keys}
    good: set[bytes] = set()
    for kid, sig in sigs:
        pk = by_id.get(bytes(kid))
        if pk is not None and verify(pk, data, bytes(sig)):
            good.add(bytes(kid))
    if len(good) < threshold:
        raise ValueError(f"instruction signed by {len(good)}/{threshold} trusted keys")
    return len(good)
