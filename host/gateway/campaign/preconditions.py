"""Install preconditions evaluated from VSS signals: each a ``Precondition`` (id, ok, value,
required, hint, status, signals).

A missing or stale signal is never satisfied (``status`` says which). ``WATCHED`` are checked
again all through the install until the point of no return; a break there stops the install and
returns the campaign to ``downloaded`` with the precondition id as reason. Account, consent and
connectivity are only checked when the install starts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Literal

from otalink.host.gateway.config import PolicyConfig
from otalink.host.gateway.vehicle import signals as sig
from otalink.host.gateway.vehicle.signals import SignalSource, Value
from pydantic import BaseModel, ConfigDict, JsonValue

WATCHED = frozenset({"battery", "park", "speed", "driver_assistance", "navigation"})
Network = Literal["wifi", "cellular", "none"]


class SignalStatus(StrEnum):
    """Whether a precondition's signals are there and fresh."""

    OK = "ok"
    MISSING = "missing"
    STALE = "stale"


class Precondition(BaseModel):
    """One item of the install checklist (``GET /preconditions``)."""

    model_config = ConfigDict(frozen=True)

    id: str
    ok: bool
    value: JsonValue
    required: str
    hint: str  # the driver's fix ("" when ok)
    status: SignalStatus
    signals: list[str]


Checklist = Callable[[], list[Precondition]]


def _entry(
    pid: str,
    ok: bool,
    value: JsonValue,
    required: str,
    hint: str,
    status: SignalStatus,
    paths: Sequence[str],
) -> Precondition:
    return Precondition(
        id=pid,
        ok=ok,
        value=value,
        required=required,
        hint="" if ok else hint,
        status=status,
        signals=list(paths),
    )


def _status(
    values: Sequence[Value | None], src: SignalSource, paths: Sequence[str]
) -> SignalStatus:
    if all(v is not None for v in values):
        return SignalStatus.OK
    for p in paths:
        if src.get(p) is None:
            return SignalStatus.MISSING
    return SignalStatus.STALE


def evaluate(src: SignalSource, policy: PolicyConfig) -> list[Precondition]:
    """Every precondition, in the order the screen lists them."""
    out: list[Precondition] = []
    OK = SignalStatus.OK

    def simple(pid: str, path: str, want: Value, required: str, hint: str) -> None:
        v = src.fresh(path)
        st = _status([v], src, [path])
        out.append(_entry(pid, st == OK and v == want, v, required, hint, st, [path]))

    # battery: SoC >= threshold, or charging, or the cable is plugged in
    soc = src.fresh(sig.SOC)
    charging = src.fresh(sig.CHARGING)
    cable = src.fresh(sig.CABLE)
    thr = policy.min_soc_percent
    soc_ok = isinstance(soc, int | float) and not isinstance(soc, bool) and soc >= thr
    ok = soc_ok or charging is True or cable is True
    st = OK if (ok or soc is not None) else _status([soc], src, [sig.SOC])
    out.append(
        _entry(
            "battery",
            ok,
            {"soc_percent": soc, "charging": charging, "cable_connected": cable},
            f">= {thr:g} % or charging",
            f"Charge to {thr:g} % or plug in",
            st,
            [sig.SOC, sig.CHARGING, sig.CABLE],
        )
    )
    simple("park", sig.GEAR, sig.GEAR_PARK, "Park (126)", "Shift to Park")
    v = src.fresh(sig.SPEED)
    st = _status([v], src, [sig.SPEED])
    spd_ok = st == OK and isinstance(v, int | float) and abs(float(v)) < 0.1
    out.append(_entry("speed", spd_ok, v, "0 km/h", "Stop the vehicle", st, [sig.SPEED]))
    das = list(policy.driver_assistance)
    vals = [src.fresh(p) for p in das]
    st = _status(vals, src, das)
    das_ok = st == OK and all(x is False for x in vals)
    out.append(
        _entry(
            "driver_assistance",
            das_ok,
            {p: x for p, x in zip(das, vals, strict=True)},
            "inactive",
            "Turn off driver assistance",
            st,
            das,
        )
    )
    simple("navigation", sig.NAV_GUIDANCE, False, "no active guidance", "End navigation")
    conn = src.fresh(sig.CONNECTIVITY)
    net = src.fresh(sig.NETWORK)
    st = _status([conn, net], src, [sig.CONNECTIVITY, sig.NETWORK])
    c_ok = st == OK and conn is True and net in ("wifi", "cellular")
    out.append(
        _entry(
            "connectivity",
            c_ok,
            {"available": conn, "network": net},
            "Wi-Fi or cellular",
            "Connect to Wi-Fi or enable cellular data",
            st,
            [sig.CONNECTIVITY, sig.NETWORK],
        )
    )
    simple("account", sig.ACCOUNT, True, "registered", "Register your account")
    simple("consent", sig.CONSENT, True, "given", "Enable OTA updates in your account")
    return out


def failing(
    results: Sequence[Precondition], only: frozenset[str] | None = None
) -> list[Precondition]:
    """The entries that are not ok (restricted to ids in ``only`` if given)."""
    return [r for r in results if not r.ok and (only is None or r.id in only)]


def network(src: SignalSource) -> Network:
    """``wifi``, ``cellular`` or ``none`` (missing/stale or unavailable = none)."""
    conn = src.fresh(sig.CONNECTIVITY)
    net = src.fresh(sig.NETWORK)
    if conn is not True:
        return "none"
    if net == "wifi":
        return "wifi"
    return "cellular" if net == "cellular" else "none"
