"""Signed ECU reports (INFO / STATUS bodies), decoded.

Public interface (stable):
    EcuInfo.from_wire(body: bytes, sig: bytes) -> EcuInfo
      .body .sig (exact signed bytes) .proto_ver .ecu_id .hw_id .nonce .active_slot .boot_state
      .last_error .slots: tuple[SlotInfo, SlotInfo] .caps: Caps .transfer: TransferState
      .release_floor .trusted_time .trial_boots
      .verify(pubkey: bytes) -> None   (raises EcuRejected(E_SIG_INVALID))
      .active -> SlotInfo, .inactive -> SlotInfo, .to_dict()
    SlotInfo(state, version, release_counter, image_len, sha256)
    Caps(max_payload, window, slot_size, erase_size, write_size, deflate_wbits, flags)
    TransferState(phase, wire_offset, wire_len, image_len)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import nacl.exceptions
import nacl.signing
from otalink.host.ecu.errors import EcuProtocolError, EcuRejected
from otalink.host.ecu.wire import decode_report
from otalink.protocol import codes
from otalink.protocol.errors import ProtocolError


@dataclass(frozen=True)
class SlotInfo:
    state: int
    version: str
    release_counter: int
    image_len: int
    sha256: bytes


@dataclass(frozen=True)
class Caps:
    max_payload: int
    window: int
    slot_size: int
    erase_size: int
    write_size: int
    deflate_wbits: int
    flags: int


@dataclass(frozen=True)
class TransferState:
    phase: int
    wire_offset: int
    wire_len: int
    image_len: int


def _int(v: Any, what: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise EcuProtocolError(f"report field {what} is not an integer")
    return v


def _str(v: Any, what: str) -> str:
    if not isinstance(v, str):
        raise EcuProtocolError(f"report field {what} is not text")
    return v


def _bytes(v: Any, what: str) -> bytes:
    if not isinstance(v, bytes):
        raise EcuProtocolError(f"report field {what} is not bytes")
    return v


def _list(v: Any, n: int, what: str) -> list[Any]:
    if not isinstance(v, list) or len(v) < n:
        raise EcuProtocolError(f"report field {what} is not an array of >= {n}")
    return v


@dataclass(frozen=True)
class EcuInfo:
    """One signed report; ``body`` and ``sig`` are kept exactly as received."""

    body: bytes
    sig: bytes
    proto_ver: int
    ecu_id: str
    hw_id: str
    nonce: bytes
    active_slot: int
    boot_state: int
    last_error: int
    slots: tuple[SlotInfo, SlotInfo]
    caps: Caps
    transfer: TransferState
    release_floor: int
    trusted_time: int
    trial_boots: int

    @classmethod
    def from_wire(cls, body: bytes, sig: bytes) -> EcuInfo:
        """Decode a report body (the signature is checked by ``verify``)."""
        try:
            f = decode_report(bytes(body))
        except ProtocolError as exc:
            raise EcuProtocolError(f"report body invalid: {exc}") from exc
        f = _list(f, 13, "body")
        slots_raw = _list(f[7], 2, "slots")
        slots = []
        for i, s in enumerate(slots_raw[:2]):
            s = _list(s, 5, f"slot {i}")
            slots.append(
                SlotInfo(
                    _int(s[0], "slot.state"),
                    _str(s[1], "slot.version"),
                    _int(s[2], "slot.release_counter"),
                    _int(s[3], "slot.image_len"),
                    _bytes(s[4], "slot.sha256"),
                )
            )
        c = [_int(x, "caps") for x in _list(f[8], 7, "caps")[:7]]
        t = [_int(x, "transfer") for x in _list(f[9], 4, "transfer")[:4]]
        return cls(
            body=bytes(body),
            sig=_bytes(sig, "sig"),
            proto_ver=_int(f[0], "proto_ver"),
            ecu_id=_str(f[1], "ecu_id"),
            hw_id=_str(f[2], "hw_id"),
            nonce=_bytes(f[3], "nonce"),
            active_slot=_int(f[4], "active_slot"),
            boot_state=_int(f[5], "boot_state"),
            last_error=_int(f[6], "last_error"),
            slots=(slots[0], slots[1]),
            caps=Caps(*c),
            transfer=TransferState(*t),
            release_floor=_int(f[10], "release_floor"),
            trusted_time=_int(f[11], "trusted_time"),
            trial_boots=_int(f[12], "trial_boots"),
        )

    def verify(self, pubkey: bytes) -> None:
        """Check the ECU's ed25519 signature over the exact body bytes."""
        try:
            nacl.signing.VerifyKey(pubkey).verify(self.body, self.sig)
        except (nacl.exceptions.BadSignatureError, ValueError, TypeError) as exc:
            raise EcuRejected(codes.E_SIG_INVALID, 0, "ECU report signature invalid") from exc

    @property
    def active(self) -> SlotInfo:
        return self.slots[self.active_slot & 1]

    @property
    def inactive(self) -> SlotInfo:
        return self.slots[(self.active_slot & 1) ^ 1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (bytes as hex)."""
        d = asdict(self)
        d["body"] = self.body.hex()
        d["sig"] = self.sig.hex()
        d["nonce"] = self.nonce.hex()
        d["slots"] = [dict(asdict(s), sha256=s.sha256.hex()) for s in self.slots]
        return d
