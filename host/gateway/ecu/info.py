"""Signed ECU reports (INFO / STATUS bodies), decoded.

Public interface (stable):
    EcuInfo.from_wire(body: bytes, sig: bytes) -> EcuInfo
      .body .sig (exact signed bytes) .proto_ver .ecu_id .hw_id .nonce .active_slot .boot_state
      .last_error .slots: tuple[SlotInfo, SlotInfo] .caps: Caps .transfer: TransferState
      .release_floor .trusted_time .trial_boots .cmd_nonce (what the next signed command carries)
      .agent_version (the answering agent's) .app: AppInfo
      .verify(pubkey: bytes) -> None   (raises EcuRejected(E_SIG_INVALID))
      .active -> SlotInfo, .inactive -> SlotInfo, .to_dict() -> InfoDoc (JSON, bytes as hex)
    SlotInfo(state, version, release_counter, image_len, sha256)
    Caps(max_payload, window, slot_size, erase_size, write_size, deflate_wbits, flags)
    TransferState(phase, wire_offset, wire_len, image_len)
    AppInfo(state, fault, wdt_trips)   the slot's application (codes.APP_*, its fault, watchdog
                                       resets in the trial)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

import nacl.exceptions
import nacl.signing
from otalink.host.gateway.ecu.errors import EcuProtocolError, EcuRejected
from otalink.protocol import codes, messages
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


@dataclass(frozen=True)
class AppInfo:
    state: int  # codes.APP_NONE / APP_STARTED / APP_HEALTHY / APP_FAILED
    fault: int  # the fault recorded for the running image (E_WATCHDOG ...; 0 = none)
    wdt_trips: int


class SlotDoc(TypedDict):
    """A slot in ``EcuInfo.to_dict()`` (sha256 as hex)."""

    state: int
    version: str
    release_counter: int
    image_len: int
    sha256: str


class CapsDoc(TypedDict):
    max_payload: int
    window: int
    slot_size: int
    erase_size: int
    write_size: int
    deflate_wbits: int
    flags: int


class TransferDoc(TypedDict):
    phase: int
    wire_offset: int
    wire_len: int
    image_len: int


class AppDoc(TypedDict):
    state: int
    fault: int
    wdt_trips: int


class InfoDoc(TypedDict):
    """``EcuInfo.to_dict()``: the report as JSON (bytes as hex)."""

    body: str
    sig: str
    proto_ver: int
    ecu_id: str
    hw_id: str
    nonce: str
    active_slot: int
    boot_state: int
    last_error: int
    slots: list[SlotDoc]
    caps: CapsDoc
    transfer: TransferDoc
    release_floor: int
    trusted_time: int
    trial_boots: int
    cmd_nonce: str
    agent_version: str
    app: AppDoc


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
    cmd_nonce: bytes
    agent_version: str = ""
    app: AppInfo = AppInfo(codes.APP_NONE, 0, 0)

    @classmethod
    def from_wire(cls, body: bytes, sig: bytes) -> EcuInfo:
        """Decode a report body (the signature is checked by ``verify``)."""
        try:
            f = messages.decode_report(bytes(body))
        except ProtocolError as exc:
            raise EcuProtocolError(f"report body invalid: {exc}") from exc
        f = _list(f, messages.REPORT_ITEMS, "body")
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
        a = [_int(x, "app") for x in _list(f[15], 3, "app")[:3]]
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
            cmd_nonce=_bytes(f[13], "cmd_nonce"),
            agent_version=_str(f[14], "agent_version"),
            app=AppInfo(*a),
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

    def to_dict(self) -> InfoDoc:
        """JSON-able form (bytes as hex)."""
        c, t, a = self.caps, self.transfer, self.app
        return {
            "body": self.body.hex(),
            "sig": self.sig.hex(),
            "proto_ver": self.proto_ver,
            "ecu_id": self.ecu_id,
            "hw_id": self.hw_id,
            "nonce": self.nonce.hex(),
            "active_slot": self.active_slot,
            "boot_state": self.boot_state,
            "last_error": self.last_error,
            "slots": [
                {
                    "state": s.state,
                    "version": s.version,
                    "release_counter": s.release_counter,
                    "image_len": s.image_len,
                    "sha256": s.sha256.hex(),
                }
                for s in self.slots
            ],
            "caps": {
                "max_payload": c.max_payload,
                "window": c.window,
                "slot_size": c.slot_size,
                "erase_size": c.erase_size,
                "write_size": c.write_size,
                "deflate_wbits": c.deflate_wbits,
                "flags": c.flags,
            },
            "transfer": {
                "phase": t.phase,
                "wire_offset": t.wire_offset,
                "wire_len": t.wire_len,
                "image_len": t.image_len,
            },
            "release_floor": self.release_floor,
            "trusted_time": self.trusted_time,
            "trial_boots": self.trial_boots,
            "cmd_nonce": self.cmd_nonce.hex(),
            "agent_version": self.agent_version,
            "app": {"state": a.state, "fault": a.fault, "wdt_trips": a.wdt_trips},
        }
