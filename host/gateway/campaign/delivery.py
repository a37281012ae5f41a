"""A patch or the full image, per ECU (issue 13, ADR 0006; the rules are ``update/deltas.py``).

``refine`` takes the offered patches of a fresh plan against the ECUs' signed reports in the
inventory (base active and confirmed, ``CAP_PATCH``): the downloader then fetches the patch
instead of the image. ``DeltaSender`` is the fleet's ``send`` hook: it checks the ECU's fresh
report again, sends the patch, and falls back at once to the full image (downloaded then if
needed, ``fetch_full``) when the ECU no longer qualifies or refuses the patch's BEGIN for any
reason (``E_BASE_MISMATCH``, ``E_PATCH``, ``E_INTERNAL``...). Every choice is an event
(``ecu_delivery``) and shows in the ECU's progress (``delivery``, ``delivery_kind``,
``delivery_size``, ``delta_from``, ``delivery_reason``; ``sent_bytes`` once sent), which the
campaign's final report repeats per ECU (``record.EcuOutcome``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

from otalink.host.gateway.campaign.connectivity import Connectivity
from otalink.host.gateway.campaign.events import EventLog
from otalink.host.gateway.campaign.inventory import Inventory
from otalink.host.gateway.campaign.source import UpdateSource
from otalink.host.gateway.ecu.errors import EcuDeferred, EcuError, EcuRejected
from otalink.host.gateway.ecu.info import EcuInfo
from otalink.host.gateway.ecu.line import FleetError, Line
from otalink.host.gateway.ecu.send import Install, Patch, TransferResult
from otalink.host.gateway.update import deltas
from otalink.host.gateway.update.types import Delivery, EcuAssignment, Network, UpdatePlan
from otalink.protocol import codes

FetchFull = Callable[[EcuAssignment], Path]
Note = Callable[[str, Mapping[str, object]], None]  # the ECU's progress callback


def full_fetcher(
    source: Callable[[], UpdateSource], link: Connectivity, plan: Callable[[], UpdatePlan | None]
) -> FetchFull:
    """Downloads (resuming, verified) one ECU's full image of the current plan on demand, on
    the link's network and within the driver's permission for a metered one."""

    def fetch(a: EcuAssignment) -> Path:
        p = plan()
        if p is None or a.target not in p.images:
            raise KeyError(a.target)
        only = replace(p, assignments=(a,), images={a.target: p.images[a.target]}, deliveries={})
        net: Network = "cellular" if link.network() == "cellular" else "wifi"
        paths = source().download(only, network=net, allow_metered=link.cellular_allowed())
        return paths[a.target]

    return fetch


def decide(d: Delivery, a: EcuAssignment, info: EcuInfo | None) -> Delivery:
    """``d`` against one signed report (``deltas.choose``)."""
    if info is None:
        return deltas.choose(d, a, None, False, False)
    act = info.active
    cap = bool(info.caps.flags & codes.CAP_PATCH)
    return deltas.choose(d, a, act.sha256, act.state == codes.SLOT_CONFIRMED, cap)


def refine(plan: UpdatePlan, inventory: Inventory) -> UpdatePlan:
    """``plan`` with each offered patch kept only where the inventory's report allows it."""
    if not plan.deliveries:
        return plan
    by_id = {a.ecu_id: a for a in plan.assignments}
    out: dict[str, Delivery] = {}
    for ecu_id, d in plan.deliveries.items():
        rec = inventory.get(ecu_id)
        info = None
        if rec is not None:
            try:
                info = EcuInfo.from_wire(bytes.fromhex(rec.body), bytes.fromhex(rec.sig))
            except (ValueError, EcuError):
                info = None
        out[ecu_id] = decide(d, by_id[ecu_id], info)
    return replace(plan, deliveries=out)


class DeltaSender:
    """The fleet's ``send`` hook for one plan (module doc)."""

    def __init__(
        self, plan: UpdatePlan, fetch_full: FetchFull, events: EventLog, note: Note
    ) -> None:
        self._plan = plan
        self._fetch_full = fetch_full
        self._events = events
        self._note = note

    def __call__(
        self, line: Line, a: EcuAssignment, path: Path, install: Install
    ) -> TransferResult:
        planned = self._plan.delivery(a.ecu_id)
        d = decide(planned, a, line.last_report) if planned.is_delta else planned
        if not d.is_delta:  # ``path`` is the image unless a patch was downloaded
            return self._full(a, d.reason, None if planned.is_delta else path, install)
        self._tell(a, d, "")
        try:
            res = install(Patch(path.read_bytes(), a.length, a.sha256_bytes))
        except EcuDeferred:
            raise  # deferred past the policy's patience: not a refusal of the patch
        except EcuRejected as exc:
            return self._full(a, deltas.REFUSED + exc.code, None, install)
        return self._sent(a, res)

    def _full(
        self, a: EcuAssignment, reason: str, path: Path | None, install: Install
    ) -> TransferResult:
        self._tell(a, deltas.full(a, reason), reason)
        if path is None:
            try:
                path = self._fetch_full(a)
            except Exception as exc:
                raise FleetError(a.ecu_id, "delta.fallback_download", repr(exc)) from exc
        return self._sent(a, install(path.read_bytes()))

    def _sent(self, a: EcuAssignment, res: TransferResult) -> TransferResult:
        self._note(
            a.ecu_id, {"phase": "transferring", "percent": 100.0, "sent_bytes": res.wire_bytes}
        )
        return res

    def _tell(self, a: EcuAssignment, d: Delivery, reason: str) -> None:
        self._events.append(
            "ecu_delivery",
            {"ecu_id": a.ecu_id, "target": d.target, "bytes": d.length, "label": d.label,
             "base_version": d.base_version, "reason": reason},
        )  # fmt: skip
        shown = {
            "delivery": d.label,
            "delivery_kind": "patch" if d.is_delta else "full",
            "delivery_size": d.download_length,
            "delta_from": d.base_version,
            "delivery_reason": reason or None,
            "sent_bytes": None,  # until it is sent (a fallback after a patch's BEGIN)
        }
        self._note(a.ecu_id, {"phase": "transferring", "percent": 0.0, **shown})
