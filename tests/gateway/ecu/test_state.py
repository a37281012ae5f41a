"""classify(): the ordered table from an ECU's signed report to where an assignment stands."""

from __future__ import annotations

import hashlib

import pytest
from otalink.host.gateway.ecu import fleet as fl
from otalink.host.gateway.ecu.info import Caps, EcuInfo, SlotInfo, TransferState
from otalink.host.gateway.ecu.state import TABLE, Found, Where, classify, runs_old
from otalink.host.gateway.update.types import EcuAssignment
from otalink.protocol import codes

NEW = hashlib.sha256(b"new").digest()
OLD = hashlib.sha256(b"old").digest()
C = codes


def _info(active: int, s0: tuple[int, bytes, str], s1: tuple[int, bytes, str]) -> EcuInfo:
    slots = tuple(SlotInfo(st, ver, 1, 10, sha) for st, sha, ver in (s0, s1))
    return EcuInfo(
        b"", b"", 2, "bms", "hw", bytes(16), active, C.BOOT_NORMAL, 0,
        (slots[0], slots[1]), Caps(4096, 8192, 1 << 20, 4096, 4, 10, 1),
        TransferState(0, 0, 0, 0), 1, 0, 0, bytes(16),
    )  # fmt: skip


A = EcuAssignment(
    "bms", "hw", "t", 10, NEW.hex(), "2.0", 2, "bundle", b"", (), 0
)  # fmt: skip

CASES = [
    # active slot, slot 0, slot 1 -> found
    (0, (C.SLOT_CONFIRMED, NEW, "2.0"), (C.SLOT_EMPTY, b"", ""), Found.CONFIRMED),
    (1, (C.SLOT_CONFIRMED, OLD, "1.0"), (C.SLOT_TRIAL, NEW, "2.0"), Found.TRIAL),
    (1, (C.SLOT_CONFIRMED, OLD, "1.0"), (C.SLOT_PENDING, NEW, "2.0"), Found.PENDING),
    (0, (C.SLOT_CONFIRMED, OLD, "1.0"), (C.SLOT_PENDING, NEW, "2.0"), Found.PENDING),
    (0, (C.SLOT_CONFIRMED, OLD, "1.0"), (C.SLOT_VERIFIED, NEW, "2.0"), Found.VERIFIED),
    (0, (C.SLOT_CONFIRMED, OLD, "1.0"), (C.SLOT_REJECTED, NEW, "2.0"), Found.REJECTED),
    (0, (C.SLOT_CONFIRMED, OLD, "1.0"), (C.SLOT_RECEIVING, NEW, "2.0"), Found.RECEIVING),
    (0, (C.SLOT_CONFIRMED, OLD, "1.0"), (C.SLOT_EMPTY, b"", ""), Found.ABSENT),
    # the same bytes under another version on the active slot: not the assignment's image there
    (0, (C.SLOT_CONFIRMED, NEW, "1.9"), (C.SLOT_EMPTY, b"", ""), Found.ABSENT),
    # active rows come first: a confirmed active image beats a verified copy elsewhere
    (0, (C.SLOT_CONFIRMED, NEW, "2.0"), (C.SLOT_VERIFIED, NEW, "2.0"), Found.CONFIRMED),
    # slots in order: slot 0's row decides before slot 1's
    (1, (C.SLOT_VERIFIED, NEW, "2.0"), (C.SLOT_PENDING, NEW, "9"), Found.VERIFIED),
]


@pytest.mark.parametrize(("active", "s0", "s1", "want"), CASES)
def test_classify_table(
    active: int, s0: tuple[int, bytes, str], s1: tuple[int, bytes, str], want: Found
) -> None:
    assert classify(_info(active, s0, s1), A) is want


def test_found_members_are_the_old_strings() -> None:
    assert Found.TRIAL == "trial" and fl.TRIAL is Found.TRIAL and fl.CONFIRMED == "confirmed"
    assert fl.UNREACHABLE == "unreachable"
    assert (fl.REVERT_REFUSED + "ecu_rejected.e_no_image").startswith(fl.REVERT_REFUSED)
    # each row names a slot state once per place
    seen = [(w, s) for w, s, _f in TABLE]
    assert len(seen) == len(set(seen)) and {w for w, _s in seen} == set(Where)


def test_runs_old() -> None:
    assert runs_old(_info(0, (C.SLOT_CONFIRMED, OLD, "1"), (C.SLOT_REJECTED, NEW, "2.0")), A)
    assert not runs_old(_info(0, (C.SLOT_CONFIRMED, NEW, "2.0"), (C.SLOT_EMPTY, b"", "")), A)
    assert not runs_old(_info(0, (C.SLOT_TRIAL, OLD, "1"), (C.SLOT_EMPTY, b"", "")), A)
