"""The ECU inventory: what each ECU last reported (signed), kept in ``STATE_DIR/ecus.json``.

It reads the fleet's last signed reports (``Line.last_report``) and nothing else of the ECU
link; the campaign asks it what every ECU runs (the release counters the update check starts
from, plans already installed) and the exact signed reports a vehicle manifest carries. Slot and
boot states are named (``SlotState``, ``BootState``: protocol/codes.py's values); a number a newer
ECU sends that this host does not know is kept as the number.

Beside the signed reports it keeps, in memory only, each ECU application's newest event per
channel (``AppRecord``: the application channel's events, ``Line.app_events``): live data the
application defines, not a signed report.

``ecus.json`` keeps its format (one object per ECU id, states as their integers); it is a cache:
an unreadable file or entry is dropped and the next report fills it again.
"""

from __future__ import annotations

import threading
from enum import IntEnum
from pathlib import Path
from typing import Annotated, NamedTuple

from otalink.host.fsutil import read_json, write_json
from otalink.host.gateway.ecu import fleet as fl
from otalink.host.gateway.ecu.errors import EcuError
from otalink.host.gateway.ecu.info import EcuInfo
from otalink.host.gateway.update.types import UpdatePlan
from otalink.protocol import codes
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError


class SlotState(IntEnum):
    """A slot's state as the ECU reports it (protocol/codes.py ``SLOT_*``)."""

    EMPTY = codes.SLOT_EMPTY
    RECEIVING = codes.SLOT_RECEIVING
    VERIFIED = codes.SLOT_VERIFIED
    PENDING = codes.SLOT_PENDING  # activated, the next boot runs it on trial
    TRIAL = codes.SLOT_TRIAL  # booted on trial, awaiting CONFIRM
    CONFIRMED = codes.SLOT_CONFIRMED
    REJECTED = codes.SLOT_REJECTED


class BootState(IntEnum):
    """How the ECU booted (protocol/codes.py ``BOOT_*``)."""

    NORMAL = codes.BOOT_NORMAL
    TRIAL = codes.BOOT_TRIAL
    REVERTED = codes.BOOT_REVERTED  # the last trial was rolled back; why in last_error


# a value this host does not know (a newer ECU) stays a plain number
SlotStateValue = Annotated[SlotState | int, Field(union_mode="left_to_right")]
BootStateValue = Annotated[BootState | int, Field(union_mode="left_to_right")]


class SlotRecord(BaseModel):
    """One slot of a report."""

    model_config = ConfigDict(frozen=True)

    state: SlotStateValue
    version: str
    release_counter: int


class EcuRecord(BaseModel):
    """An ECU's last signed report as the inventory keeps it (``body``, ``sig``: exact bytes,
    hex)."""

    model_config = ConfigDict(frozen=True)

    version: str
    active_slot: int
    active_sha256: str
    active_state: SlotStateValue
    boot_state: BootStateValue
    last_error: int
    release_floor: int
    slots: tuple[SlotRecord, ...]
    body: str
    sig: str
    verified: bool = False
    ts: float | None = None

    @property
    def agent_version(self) -> str:
        """The agent that signed this report (its field 14, read from the exact signed bytes;
        "" when it has none or they do not parse)."""
        try:
            return EcuInfo.from_wire(
                bytes.fromhex(self.body), bytes.fromhex(self.sig)
            ).agent_version
        except (ValueError, EcuError):
            return ""

    @property
    def running_counter(self) -> int | None:
        """The release counter of the confirmed image the ECU runs (None if it runs none)."""
        if self.active_state != SlotState.CONFIRMED or not self.verified:
            return None
        if 0 <= self.active_slot < len(self.slots):
            return self.slots[self.active_slot].release_counter
        return None


class LinkHealth(BaseModel):
    """The line of one ECU: ``ok`` unless each of its last few requests failed (False before
    the first answer); ``errors`` counts every failure."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    last_seen: float | None
    last_error: str | None
    errors: int


class AppRecord(BaseModel):
    """The newest event an ECU's application sent on one channel of the application channel
    (its meaning is the application's: boards/examples list their channel maps)."""

    model_config = ConfigDict(frozen=True)

    chan: int
    data: str = Field(description="the event's bytes, hex")
    ts: float = Field(description="when the gateway received it (epoch seconds)")
    count: int = Field(description="events received on this channel since the agent started")


class SignedReport(NamedTuple):
    """An ECU's exact signed report bytes, for the vehicle manifest."""

    ecu_id: str
    body: bytes
    sig: bytes
    verified: bool


_FILE = TypeAdapter(dict[str, EcuRecord])


def _slot(v: int) -> SlotState | int:
    try:
        return SlotState(v)
    except ValueError:
        return v


def _boot(v: int) -> BootState | int:
    try:
        return BootState(v)
    except ValueError:
        return v


def _from_line(line: fl.Line) -> EcuRecord | None:
    r = line.last_report
    if r is None:
        return None
    return EcuRecord(
        version=r.active.version,
        active_slot=r.active_slot,
        active_sha256=r.active.sha256.hex(),
        active_state=_slot(r.active.state),
        boot_state=_boot(r.boot_state),
        last_error=r.last_error,
        release_floor=r.release_floor,
        slots=tuple(
            SlotRecord(state=_slot(s.state), version=s.version, release_counter=s.release_counter)
            for s in r.slots
        ),
        body=r.body.hex(),
        sig=r.sig.hex(),
        verified=True,  # Line.report checked it with the ECU's registered key
        ts=line.last_report_ts,
    )


def _load(path: Path) -> dict[str, EcuRecord]:
    try:
        doc = read_json(path)
    except ValueError:
        return {}
    if not isinstance(doc, dict):
        return {}
    out: dict[str, EcuRecord] = {}
    for ecu_id, entry in doc.items():
        try:
            out[ecu_id] = EcuRecord.model_validate(entry)
        except ValidationError:
            continue  # a cache: the next report fills it again
    return out


class Inventory:
    """The ECUs' last signed reports, in memory and in ``ecus.json``."""

    def __init__(self, path: Path, fleet: fl.Fleet) -> None:
        self._path = path
        self._fleet = fleet
        self._lock = threading.Lock()
        self._ecus = _load(path)

    def get(self, ecu_id: str) -> EcuRecord | None:
        """What ``ecu_id`` last reported (None before its first report)."""
        with self._lock:
            return self._ecus.get(ecu_id)

    def latest(self, ecu_id: str) -> EcuRecord | None:
        """``ecu_id``'s signed report of this session (None if it has not answered since the
        agent started)."""
        line = self._fleet.lines.get(ecu_id)
        return None if line is None else _from_line(line)

    def save(self) -> None:
        """Take every line's latest signed report and persist the inventory."""
        with self._lock:
            for ecu_id, line in self._fleet.lines.items():
                rec = _from_line(line)
                if rec is not None:
                    self._ecus[ecu_id] = rec
            data = _FILE.dump_python(self._ecus, mode="json")
        write_json(self._path, data)

    def refresh(self) -> dict[str, str]:
        """Ask every ECU for a fresh signed report (fresh session) and keep them; the error
        code of each ECU that did not answer."""
        errors: dict[str, str] = {}
        for ecu_id, res in self._fleet.reports(fresh=True).items():
            if isinstance(res, BaseException):
                errors[ecu_id] = str(getattr(res, "code", repr(res)))
        self.save()
        return errors

    def app(self, ecu_id: str) -> list[AppRecord]:
        """``ecu_id``'s application's newest event per channel (since the agent started)."""
        line = self._fleet.lines.get(ecu_id)
        if line is None:
            return []
        return [
            AppRecord(chan=e.chan, data=e.data.hex(), ts=e.ts, count=e.count)
            for e in line.app_events.latest()
        ]

    def health(self, ecu_id: str) -> LinkHealth:
        """The link health of ``ecu_id``'s line."""
        h = self._fleet.lines[ecu_id].health
        return LinkHealth(ok=h.ok, last_seen=h.last_seen, last_error=h.last_error, errors=h.errors)

    def installed(self) -> dict[str, int]:
        """ecu_id -> release counter of the confirmed image each ECU last reported running."""
        with self._lock:
            ecus = dict(self._ecus)
        return {i: n for i, e in ecus.items() if (n := e.running_counter) is not None}

    def release_floors(self) -> dict[str, int]:
        """ecu_id -> the release floor each ECU last reported."""
        with self._lock:
            return {i: e.release_floor for i, e in self._ecus.items()}

    def runs(self, plan: UpdatePlan) -> bool:
        """Every ECU of ``plan`` already runs (confirmed) the image the plan assigns it."""
        for a in plan.assignments:
            e = self.get(a.ecu_id)
            if e is None or e.active_sha256 != a.sha256 or e.active_state != SlotState.CONFIRMED:
                return False
        return bool(plan.assignments)

    def signed_reports(self) -> list[SignedReport]:
        """Each ECU's latest signed report: this session's, else the one kept on disk."""
        out: list[SignedReport] = []
        for ecu_id, line in self._fleet.lines.items():
            r = line.last_report
            if r is not None:
                out.append(SignedReport(ecu_id, r.body, r.sig, True))
                continue
            e = self.get(ecu_id)
            if e is not None and e.body:
                body, sig = bytes.fromhex(e.body), bytes.fromhex(e.sig)
                out.append(SignedReport(ecu_id, body, sig, e.verified))
        return out
