"""The persisted campaign record: one typed, versioned object, serialised here and nowhere else.

``STATE_DIR/campaign.json`` holds a :class:`CampaignRecord` (``version`` 2): the state and its
reason, the verified plan (an object, with the update layer's own field encoding), the images on
disk, the schedule, the per-ECU install phases, the result, the history, and the loop guard
(how often the installer's step started in the current state). :func:`dump` and :func:`load`
are the only code that turns it into bytes and back; :func:`parse` migrates the version-1 files
written before it (a free dict with the plan as JSON text inside the JSON).

A file that is not a record (corrupt, a state this code does not know, a newer version) is a
``RecordError``: the agent does not start rather than overwrite a campaign it cannot read.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Final, Literal

from otalink.host.errors import OtalinkError
from otalink.host.fsutil import read_json, write_json
from otalink.host.gateway.campaign.table import State
from otalink.host.gateway.update.types import UpdatePlan
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
)
from typing_extensions import TypedDict

RECORD_VERSION: Final = 2
HISTORY_MAX: Final = 200
FINISHED_MAX: Final = 50


class RecordError(OtalinkError, ValueError):
    """``campaign.json`` cannot be read as a campaign record (nothing is overwritten)."""

    code = "campaign.record_invalid"


DeliveryKind = Literal["patch", "full"]  # what an ECU was sent: a patch of its image, or the image
# what the install records of each ECU's delivery and the final report repeats (``EcuOutcome``)
DELIVERY_FIELDS: Final = frozenset(
    ("delivery", "delivery_kind", "delivery_size", "delta_from", "delivery_reason", "sent_bytes")
)


class Phase(StrEnum):
    """Where one ECU stands in the install (``status().install.ecus``)."""

    WAITING = "waiting"
    DEFERRED = "deferred"  # the ECU's application deferred the update: retried (``reason``)
    TRANSFERRING = "transferring"
    VERIFIED = "verified"
    ACTIVATED = "activated"
    RESTARTING = "restarting"
    TRIAL = "trial"
    CONFIRMED = "confirmed"
    REVERTED = "reverted"
    FAILED = "failed"
    UP_TO_DATE = "up_to_date"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EcuProgress(_Frozen):
    """One ECU's install phase; ``percent`` of the wire stream while transferring."""

    phase: Phase = Phase.WAITING
    percent: float = 0.0
    offset: int | None = None
    error: str | None = None
    reason: str | None = None  # ``deferred``: the application's reason
    delivery: str | None = None  # what is sent: "12 kB, delta from 2.0.0" / "250 kB, full image"
    delivery_kind: DeliveryKind | None = None
    delivery_size: int | None = None  # bytes of the patch / image as downloaded
    delta_from: str | None = None  # the version the patch starts from (a patch only)
    delivery_reason: str | None = None  # why the full image (``delta.*``), when a patch was not
    sent_bytes: int | None = None  # what the line carried for it (the wire stream, compressed)


class Miss(_Frozen):
    """A scheduled install that could not start, and why."""

    ts: float
    reasons: tuple[str, ...]


class Schedule(_Frozen):
    """The chosen install time (unix seconds), the next try, and the misses so far."""

    at: float
    next_at: float
    attempts: int = 0
    misses: tuple[Miss, ...] = ()


class EcuOutcome(_Frozen):
    """How a finished campaign left one ECU (from its last signed report), and what it was
    sent (the install's record of it, ``EcuProgress``; all None when nothing was sent)."""

    to_version: str
    running_version: str | None = None
    outcome: Phase | None = None
    last_error: int | None = None  # the ECU's wire error code (protocol/codes.py)
    delivery: str | None = None  # "12 kB, delta from 2.0.0" / "250 kB, full image"
    delivery_kind: DeliveryKind | None = None
    delivery_size: int | None = None  # bytes of the patch / image as downloaded
    delta_from: str | None = None  # the version the patch started from (a patch only)
    delivery_reason: str | None = None  # why the full image (``delta.*``), when a patch was not
    sent_bytes: int | None = None  # what the serial line carried for it (the wire stream)

    @classmethod
    def of(
        cls,
        to_version: str,
        running_version: str | None,
        last_error: int | None,
        progress: EcuProgress | None,
    ) -> EcuOutcome:
        """The outcome from the ECU's latest report and its install progress (its phase and
        what it was sent)."""
        if progress is None:
            return cls(
                to_version=to_version, running_version=running_version, last_error=last_error
            )
        return cls(
            to_version=to_version,
            running_version=running_version,
            outcome=progress.phase,
            last_error=last_error,
            **progress.model_dump(include=set(DELIVERY_FIELDS)),
        )


class CampaignResult(_Frozen):
    """The end of a campaign: the final state, why, and each ECU."""

    state: State
    reason: str | None = None
    ecus: dict[str, EcuOutcome] = {}
    ts: float = 0.0


class FailingItem(_Frozen):
    """A precondition that broke, with the driver's fix."""

    id: str
    hint: str


class Note(TypedDict, total=False):
    """The facts a history entry adds to its transition (all optional)."""

    plan_id: str
    version: str
    seconds: float
    code: str
    detail: str
    by: str
    at: str | None
    missed: bool
    reasons: list[str]
    retry_at: str | None
    failing: list[FailingItem]
    nothing_changed: bool
    result: State
    ecus: dict[str, EcuOutcome]
    ecu_id: str


class HistoryEntry(BaseModel):
    """A transition worth telling the driver (``GET /history``); unknown members of older
    records are kept as they are."""

    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)

    ts: float
    event: str
    from_: State | None = Field(default=None, alias="from")
    to: State | None = None
    reason: str | None = None
    plan_id: str | None = None
    version: str | None = None
    seconds: float | None = None
    code: str | None = None
    detail: str | None = None
    by: str | None = None
    at: str | None = None
    missed: bool | None = None
    reasons: list[str] | None = None
    retry_at: str | None = None
    failing: list[FailingItem] | None = None
    nothing_changed: bool | None = None
    result: State | None = None
    ecus: dict[str, EcuOutcome] | None = None
    ecu_id: str | None = None


class LoopCount(_Frozen):
    """Mender's loop guard: how often the installer's step started in ``state``."""

    state: State
    count: int
    error: str | None = None  # the last step error's type, if one failed


def _plan_in(value: object) -> UpdatePlan:
    if isinstance(value, UpdatePlan):
        return value
    if not isinstance(value, dict):
        raise ValueError("the plan must be an object")
    try:
        return UpdatePlan.from_json(json.dumps(value))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not an update plan: {exc!r}") from None


def _plan_out(plan: UpdatePlan) -> object:
    return json.loads(plan.to_json())


# The plan is an object in the record, in the update layer's own encoding (bytes as hex).
PlanField = Annotated[
    UpdatePlan,
    PlainValidator(_plan_in),
    PlainSerializer(_plan_out),
    WithJsonSchema({"type": "object"}),
]


class CampaignRecord(_Frozen):
    """Everything the campaign persists; replaced (never mutated) on every change."""

    version: Literal[2] = RECORD_VERSION
    state: State = State.IDLE
    reason: str | None = None
    since: float = 0.0
    seq: int = 0
    campaign_id: str | None = None
    plan: PlanField | None = None
    images: dict[str, str] | None = None  # ecu_id -> verified image on disk
    schedule: Schedule | None = None
    install: dict[str, EcuProgress] = {}
    result: CampaignResult | None = None
    history: tuple[HistoryEntry, ...] = ()
    cellular_allowed: bool | None = None  # the driver's choice (None: the policy's default)
    report_queued: bool = False
    finished_plans: tuple[str, ...] = ()
    server_retry_at: float = 0.0  # a paused download waits for the server until then
    loop: LoopCount | None = None


class RecordChanges(TypedDict, total=False):
    """Fields a transition (or a checkpoint) changes in the same atomic write."""

    plan: UpdatePlan | None
    images: dict[str, str] | None
    schedule: Schedule | None
    install: dict[str, EcuProgress]
    result: CampaignResult | None
    history: tuple[HistoryEntry, ...]
    cellular_allowed: bool | None
    report_queued: bool
    finished_plans: tuple[str, ...]
    server_retry_at: float
    loop: LoopCount | None


def to_json(record: CampaignRecord) -> JsonValue:
    """The record as JSON data (absent = None: every nullable field defaults to None)."""
    data: JsonValue = record.model_dump(mode="json", by_alias=True, exclude_none=True)
    return data


def parse(doc: object) -> CampaignRecord:
    """A record from decoded JSON, migrating older versions; RecordError if it is not one."""
    if not isinstance(doc, dict):
        raise RecordError("campaign.json is not a JSON object")
    version = doc.get("version")
    if version == 1:
        doc = _from_v1(doc)
    elif version != RECORD_VERSION:
        raise RecordError(f"campaign.json has version {version!r}; this agent reads 1 and 2")
    try:
        return CampaignRecord.model_validate(doc)
    except ValidationError as exc:
        raise RecordError(f"campaign.json is not a campaign record: {exc}") from None


def _from_v1(doc: dict[str, object]) -> dict[str, object]:
    """Version 1 (issue 4-11 agents): the same fields in a free dict, the plan as JSON text."""
    out = {k: v for k, v in doc.items() if v is not None}
    out["version"] = RECORD_VERSION
    plan = out.get("plan")
    if isinstance(plan, str):
        try:
            out["plan"] = json.loads(plan)
        except ValueError:
            raise RecordError("campaign.json (version 1): the plan is not JSON") from None
    return out


def load(path: Path) -> CampaignRecord:
    """The record at ``path`` (a fresh one if there is none)."""
    try:
        doc = read_json(path)
    except ValueError:
        raise RecordError(f"{path}: not JSON") from None
    return CampaignRecord() if doc is None else parse(doc)


def dump(path: Path, record: CampaignRecord) -> None:
    """Write the record atomically (temp file, fsync, rename, fsync of the folder)."""
    write_json(path, to_json(record))
