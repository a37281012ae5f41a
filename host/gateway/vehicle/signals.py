"""Simulated vehicle signal source keyed by COVESA VSS paths, with timestamps.

The embedded default: values are set from the CLI (``otalink sim set``) or the local API
(``PUT /api/v1/signals``). Every value carries the time it was set; a value older than
``max_age_s`` is *stale* and, like a missing one, counts as not satisfied by the preconditions.
A real vehicle replaces this class with one fed by its VSS broker (same three methods).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypedDict

from otalink.host.errors import NotFound, Refused

Value = bool | int | float | str

# VSS paths the agent knows, with their value types.  Standard VSS 4.x signals plus a few
# project-defined ones (marked "project"): see docs/host.md "Preconditions".
SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"
CHARGING = "Vehicle.Powertrain.TractionBattery.Charging.IsCharging"
CABLE = "Vehicle.Powertrain.TractionBattery.Charging.IsChargingCableConnected"
GEAR = "Vehicle.Powertrain.Transmission.SelectedGear"
SPEED = "Vehicle.Speed"
ADAS_CRUISE = "Vehicle.ADAS.CruiseControl.IsActive"
ADAS_LANE = "Vehicle.ADAS.LaneDepartureDetection.IsEnabled"
NAV_GUIDANCE = "Vehicle.Cabin.Infotainment.Navigation.IsGuidanceActive"  # project
CONNECTIVITY = "Vehicle.Connectivity.IsConnectivityAvailable"  # VSS 4.x
NETWORK = "Vehicle.Connectivity.Network"  # project: wifi | cellular | none
ACCOUNT = "Vehicle.Driver.Account.IsRegistered"  # project
CONSENT = "Vehicle.Driver.Account.IsOtaConsentGiven"  # project

GEAR_PARK = 126  # VSS SelectedGear: 126 = Park, 127 = Drive, -1..-n reverse, 0 neutral

KNOWN: dict[str, type] = {
    SOC: float,
    CHARGING: bool,
    CABLE: bool,
    GEAR: int,
    SPEED: float,
    ADAS_CRUISE: bool,
    ADAS_LANE: bool,
    NAV_GUIDANCE: bool,
    CONNECTIVITY: bool,
    NETWORK: str,
    ACCOUNT: bool,
    CONSENT: bool,
}
NETWORKS = ("wifi", "cellular", "none")


# A parked, charged car on Wi-Fi with a registered, consenting driver (the demo's start).
PARKED_DEFAULTS: dict[str, Value] = {
    SOC: 80.0,
    CHARGING: False,
    CABLE: False,
    GEAR: GEAR_PARK,
    SPEED: 0.0,
    ADAS_CRUISE: False,
    ADAS_LANE: False,
    NAV_GUIDANCE: False,
    CONNECTIVITY: True,
    NETWORK: "wifi",
    ACCOUNT: True,
    CONSENT: True,
}


class SignalDoc(TypedDict):
    """One signal in ``snapshot()``: its value (None: never received), when it was set, its
    age and whether it is too old to trust."""

    value: Value | None
    ts: float | None
    age_s: float | None
    stale: bool


@dataclass(frozen=True)
class Reading:
    """A signal value and when it was set (unix seconds)."""

    path: str
    value: Value
    ts: float
    live: bool = True  # re-stamped by ``refresh`` (a feed still publishing)


def coerce(path: str, value: Any) -> Value:
    """Convert ``value`` (possibly a CLI string) to the signal's type; Refused if impossible."""
    kind = KNOWN.get(path)
    if kind is None:
        raise NotFound("vehicle.unknown_signal", f"unknown VSS path {path!r}")
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
                return True
            if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off"):
                return False
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            raise ValueError(value)
        if kind is int:
            if isinstance(value, bool):
                raise ValueError(value)
            if isinstance(value, str) and value.strip().upper() in ("P", "PARK"):
                return GEAR_PARK
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError(value)
            f = float(value)
            if f != f or f in (float("inf"), float("-inf")):
                raise ValueError(value)
            return f
        s = str(value).strip().lower()
        if path == NETWORK and s not in NETWORKS:
            raise ValueError(value)
        return s
    except (TypeError, ValueError):
        raise Refused(
            "vehicle.invalid_signal_value", f"{path} needs a {kind.__name__}, got {value!r}"
        ) from None


class SignalSource:
    """Thread-safe store of the latest reading of each VSS signal."""

    def __init__(
        self,
        clock_now: Callable[[], float],
        max_age_s: float = 30.0,
        initial: dict[str, Value] | None = None,
    ) -> None:
        self._now = clock_now
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._values: dict[str, Reading] = {}
        self._listeners: list[Callable[[Reading], None]] = []
        for path, value in (initial or {}).items():
            self.set(path, value)

    def set(self, path: str, value: Any, ts: float | None = None) -> Reading:
        """Set a signal (coerced to its VSS type), stamped now or at ``ts`` (then not live)."""
        if ts is None:
            reading = Reading(path, coerce(path, value), self._now(), True)
        else:
            reading = Reading(path, coerce(path, value), float(ts), False)
        with self._lock:
            self._values[path] = reading
            listeners = list(self._listeners)
        for fn in listeners:
            fn(reading)
        return reading

    def clear(self, path: str) -> None:
        """Forget a signal (it becomes missing)."""
        if path not in KNOWN:
            raise NotFound("vehicle.unknown_signal", f"unknown VSS path {path!r}")
        with self._lock:
            self._values.pop(path, None)

    def get(self, path: str) -> Reading | None:
        """The latest reading, or None if the signal was never set (unknown path: NotFound)."""
        if path not in KNOWN:
            raise NotFound("vehicle.unknown_signal", f"unknown VSS path {path!r}")
        with self._lock:
            return self._values.get(path)

    def fresh(self, path: str) -> Value | None:
        """The value if present and not older than ``max_age_s``, else None."""
        r = self.get(path)
        if r is None or self._now() - r.ts > self.max_age_s:
            return None
        return r.value

    def snapshot(self) -> dict[str, SignalDoc]:
        """Every known path: value, ts, age_s, stale (JSON-able); missing ones have value None."""
        now = self._now()
        with self._lock:
            values = dict(self._values)
        out: dict[str, SignalDoc] = {}
        for path in KNOWN:
            r = values.get(path)
            if r is None:
                out[path] = {"value": None, "ts": None, "age_s": None, "stale": True}
            else:
                age = max(0.0, now - r.ts)
                out[path] = {
                    "value": r.value,
                    "ts": r.ts,
                    "age_s": round(age, 3),
                    "stale": age > self.max_age_s,
                }
        return out

    def refresh(self) -> None:
        """Re-stamp every live value with the current time (the simulated feed still publishing).

        Values set with an explicit ``ts`` keep it, so a stale reading can be simulated.
        """
        now = self._now()
        with self._lock:
            self._values = {
                p: Reading(p, r.value, now, True) if r.live else r for p, r in self._values.items()
            }

    def subscribe(self, fn: Callable[[Reading], None]) -> None:
        """Call ``fn`` on every ``set`` (from the setter's thread)."""
        with self._lock:
            self._listeners.append(fn)
