"""Preconditions from VSS signals, including missing and stale ones."""

from __future__ import annotations

import pytest
from otalink.host.errors import NotFound, Refused
from otalink.host.gateway.campaign import preconditions as pre
from otalink.host.gateway.campaign.clock import ManualClock
from otalink.host.gateway.config import PolicyConfig
from otalink.host.gateway.vehicle import signals as sig
from otalink.host.gateway.vehicle.signals import PARKED_DEFAULTS, SignalSource


def _src(clock: ManualClock, **over: object) -> SignalSource:
    s = SignalSource(clock.now, max_age_s=30.0, initial=PARKED_DEFAULTS)
    for k, v in over.items():
        s.set(k, v)
    return s


def _by_id(items: list[pre.Precondition]) -> dict[str, pre.Precondition]:
    return {i.id: i for i in items}


def test_parked_car_passes_everything() -> None:
    c = ManualClock()
    res = pre.evaluate(_src(c), PolicyConfig())
    assert [r.id for r in res] == [
        "battery",
        "park",
        "speed",
        "driver_assistance",
        "navigation",
        "connectivity",
        "account",
        "consent",
    ]
    assert all(r.ok for r in res), res
    assert all(set(r.model_dump()) >= {"id", "ok", "value", "required", "hint"} for r in res)


@pytest.mark.parametrize(
    ("path", "value", "pid", "hint"),
    [
        (sig.GEAR, 127, "park", "Shift to Park"),
        (sig.SPEED, 12.5, "speed", "Stop the vehicle"),
        (sig.ADAS_CRUISE, True, "driver_assistance", "Turn off driver assistance"),
        (sig.NAV_GUIDANCE, True, "navigation", "End navigation"),
        (sig.NETWORK, "none", "connectivity", "Connect to Wi-Fi or enable cellular data"),
        (sig.CONNECTIVITY, False, "connectivity", "Connect to Wi-Fi or enable cellular data"),
        (sig.ACCOUNT, False, "account", "Register your account"),
        (sig.CONSENT, False, "consent", "Enable OTA updates in your account"),
        (sig.SOC, 12.0, "battery", "Charge to 30 % or plug in"),
    ],
)
def test_each_failure_has_its_hint(path: str, value: object, pid: str, hint: str) -> None:
    c = ManualClock()
    res = _by_id(pre.evaluate(_src(c, **{path: value}), PolicyConfig()))
    assert res[pid].ok is False
    assert res[pid].hint == hint
    assert [r.id for r in pre.failing(list(res.values()))] == [pid]


def test_low_battery_ok_when_charging_or_plugged() -> None:
    c = ManualClock()
    pol = PolicyConfig(min_soc_percent=50)
    s = _src(c, **{sig.SOC: 20.0})
    assert _by_id(pre.evaluate(s, pol))["battery"].hint == "Charge to 50 % or plug in"
    s.set(sig.CABLE, True)
    assert _by_id(pre.evaluate(s, pol))["battery"].ok is True
    s.set(sig.CABLE, False)
    s.set(sig.CHARGING, "true")
    assert _by_id(pre.evaluate(s, pol))["battery"].ok is True


def test_missing_signal_is_not_satisfied() -> None:
    c = ManualClock()
    s = _src(c)
    s.clear(sig.GEAR)
    park = _by_id(pre.evaluate(s, PolicyConfig()))["park"]
    assert park.ok is False and park.status == "missing" and park.value is None
    s2 = SignalSource(c.now)  # nothing at all: nothing passes
    assert not any(r.ok for r in pre.evaluate(s2, PolicyConfig()))


def test_stale_signal_is_not_satisfied_until_fresh() -> None:
    c = ManualClock()
    s = _src(c)
    c.advance(31)  # every reading is now older than max_age_s
    res = pre.evaluate(s, PolicyConfig())
    assert not any(r.ok for r in res)
    assert {r.status for r in res} == {"stale"}
    s.refresh()  # the live feed publishes again
    assert all(r.ok for r in pre.evaluate(s, PolicyConfig()))
    # a value set with an old timestamp stays stale even through refresh()
    s.set(sig.GEAR, 126, ts=c.now() - 100)
    s.refresh()
    park = _by_id(pre.evaluate(s, PolicyConfig()))["park"]
    assert park.ok is False and park.status == "stale"


def test_driver_assistance_signals_from_policy() -> None:
    c = ManualClock()
    pol = PolicyConfig(driver_assistance=(sig.ADAS_CRUISE, sig.ADAS_LANE))
    s = _src(c, **{sig.ADAS_LANE: True})
    das = _by_id(pre.evaluate(s, pol))["driver_assistance"]
    assert das.ok is False and das.value == {sig.ADAS_CRUISE: False, sig.ADAS_LANE: True}


def test_signal_coercion_and_errors() -> None:
    c = ManualClock()
    s = SignalSource(c.now)
    assert s.set(sig.GEAR, "P").value == sig.GEAR_PARK
    assert s.set(sig.SPEED, "0").value == 0.0
    assert s.set(sig.NETWORK, "WiFi ").value == "wifi"
    with pytest.raises(Refused):
        s.set(sig.NETWORK, "5g")
    with pytest.raises(Refused):
        s.set(sig.CONSENT, "maybe")
    with pytest.raises(Refused):
        s.set(sig.SOC, "nan")
    with pytest.raises(NotFound):
        s.set("Vehicle.Nope", 1)
    snap = s.snapshot()
    assert snap[sig.GEAR]["value"] == 126 and snap[sig.GEAR]["stale"] is False
    assert snap[sig.CONSENT] == {"value": None, "ts": None, "age_s": None, "stale": True}


def test_network_helper() -> None:
    c = ManualClock()
    s = _src(c)
    assert pre.network(s) == "wifi"
    s.set(sig.NETWORK, "cellular")
    assert pre.network(s) == "cellular"
    s.set(sig.CONNECTIVITY, False)
    assert pre.network(s) == "none"
