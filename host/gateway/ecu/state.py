"""Where an assignment's image stands on an ECU, read from its signed report.

Public interface (stable):
    Found (StrEnum)   CONFIRMED TRIAL PENDING VERIFIED REJECTED RECEIVING ABSENT UNREACHABLE
    classify(info: EcuInfo, a: Assigned) -> Found     the first row of TABLE that matches
                       (``Assigned``: an ``EcuAssignment``'s sha256_bytes and version)
    TABLE              the ordered table classify() reads
    runs_old(info, a) -> bool   the ECU runs a confirmed image that is not ``a``'s
    POST_BOOT: frozenset[Found]   what an ECU can report once it booted after REBOOT

``Found`` members are strings (``Found.TRIAL == "trial"``), so records and logs that stored the
names keep reading them.
"""

from __future__ import annotations

from enum import Enum, StrEnum
from typing import Protocol

from otalink.host.gateway.ecu.info import EcuInfo
from otalink.protocol import codes


class Assigned(Protocol):
    """What classify() needs of an assignment (``gateway.update.types.EcuAssignment``)."""

    @property
    def sha256_bytes(self) -> bytes: ...

    @property
    def version(self) -> str: ...


class Found(StrEnum):
    """What an ECU's report says about one assignment's image."""

    CONFIRMED = "confirmed"  # running the new image, confirmed
    TRIAL = "trial"  # running the new image on trial
    PENDING = "pending"  # new image activated, waiting for the reboot
    VERIFIED = "verified"  # new image verified in the inactive slot
    REJECTED = "rejected"  # new image rolled back (self-test failed, reverted)
    RECEIVING = "receiving"  # new image partly received (resumable)
    ABSENT = "absent"  # not there at all
    UNREACHABLE = "unreachable"  # the ECU did not answer (settle())


class Where(Enum):
    ACTIVE = "the active slot holds the image (same sha256 and version)"
    ANY_SLOT = "a slot holds the image (same sha256), slots in order"


# The first row that matches decides; no row: ABSENT.
TABLE: tuple[tuple[Where, int, Found], ...] = (
    (Where.ACTIVE, codes.SLOT_CONFIRMED, Found.CONFIRMED),
    (Where.ACTIVE, codes.SLOT_TRIAL, Found.TRIAL),
    (Where.ACTIVE, codes.SLOT_PENDING, Found.PENDING),
    (Where.ANY_SLOT, codes.SLOT_PENDING, Found.PENDING),
    (Where.ANY_SLOT, codes.SLOT_VERIFIED, Found.VERIFIED),
    (Where.ANY_SLOT, codes.SLOT_REJECTED, Found.REJECTED),
    (Where.ANY_SLOT, codes.SLOT_RECEIVING, Found.RECEIVING),
)

POST_BOOT = frozenset({Found.CONFIRMED, Found.TRIAL, Found.REJECTED})


def classify(info: EcuInfo, a: Assigned) -> Found:
    """Where ``a``'s image stands on the ECU that sent ``info`` (the first row of TABLE)."""
    want = a.sha256_bytes
    active = info.active
    if active.sha256 == want and active.version == a.version:
        for where, state, found in TABLE:
            if where is Where.ACTIVE and active.state == state:
                return found
    for slot in info.slots:
        if slot.sha256 != want:
            continue
        for where, state, found in TABLE:
            if where is Where.ANY_SLOT and slot.state == state:
                return found
    return Found.ABSENT


def runs_old(info: EcuInfo, a: Assigned) -> bool:
    """The ECU runs a confirmed image that is not ``a``'s (rolled back / never changed)."""
    act = info.active
    return act.state == codes.SLOT_CONFIRMED and act.sha256 != a.sha256_bytes
