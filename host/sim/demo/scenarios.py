"""The product's scenarios played headless through the local API (the CLI's code path).

Each scenario is a function ``(ctx) -> None`` that drives a running ``DemoStack`` exactly as the
driver (screen) and the vehicle (signal simulator) would, and raises ``ScenarioFailed`` the
moment the system does not behave as the scenario says. ``play(name, stack)`` runs one and
returns ``(ok, transcript)``. ``otalink demo --scenario NAME`` and the tests use these.

Scenarios: main, no-connection-then-retry, no-connection-then-schedule, preconditions-not-met,
failed-self-test-rollback (the stack must be built with ``fail_selftest`` for the last one:
``options_for(name)`` returns the right ``DemoOptions``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from otalink.host.errors import ToolError
from otalink.host.gateway.api.client import ApiClient, ApiError
from otalink.host.gateway.campaign.view import Status, UpdateDetails
from otalink.host.gateway.vehicle import signals as sig
from otalink.host.sim.demo.stack import OLD_VERSION, DemoOptions, DemoStack
from otalink.protocol import codes
from pydantic import ValidationError

READY = ("downloaded", "awaiting_confirmation")
WAIT_S = 120.0


class ScenarioFailed(ToolError):
    """The system did not do what the scenario expects."""

    code = "demo.scenario_failed"


@dataclass
class Ctx:
    """What a scenario drives: the stack (for vehicle signals) and the API client."""

    stack: DemoStack
    api: ApiClient
    log: list[str] = field(default_factory=list)

    def say(self, text: str) -> None:
        self.log.append(text)

    def status(self) -> Status:
        """``GET /status`` parsed into the view model the API answers with."""
        try:
            return Status.model_validate(self.api.get("/status"))
        except ValidationError as exc:
            raise ScenarioFailed(f"status is not a Status: {exc}") from None

    def wait(self, pred: Callable[[Status], bool], what: str, timeout: float = WAIT_S) -> Status:
        """Poll the status until ``pred`` holds (or fail with the last status)."""
        deadline = time.monotonic() + timeout
        st = self.status()
        while not pred(st):
            if st.state in ("failed_rolled_back", "failed_needs_service") and not pred(st):
                raise ScenarioFailed(f"waiting for {what}: campaign ended {st.state}")
            if time.monotonic() > deadline:
                raise ScenarioFailed(f"timed out waiting for {what}; last state {st.state}")
            time.sleep(0.1)
            st = self.status()
        self.say(f"state {st.state}" + (f" ({st.reason})" if st.reason else ""))
        return st

    def wait_state(self, *states: str, timeout: float = WAIT_S) -> Status:
        return self.wait(lambda s: s.state in states, "/".join(states), timeout)

    def signal(self, path: str, value: Any) -> None:
        self.api.put("/signals", {"signals": {path: value}})
        self.say(f"vehicle: {path} = {value}")

    def expect_refused(self, method: str, path: str, body: Any, code: str | None) -> ApiError:
        try:
            self.api.call(method, path, body)
        except ApiError as exc:
            if code is not None and exc.code != code:
                raise ScenarioFailed(f"{path}: refused with {exc.code}, expected {code}") from None
            self.say(f"{method} {path}: refused ({exc.code}): {exc}")
            return exc
        raise ScenarioFailed(f"{method} {path} was accepted; expected a refusal ({code})")


def _available(ctx: Ctx) -> UpdateDetails:
    st = ctx.status()
    if st.state == "idle":
        ctx.api.post("/check")
        ctx.say("checked for updates")
    st = ctx.wait_state("available")
    try:
        details = UpdateDetails.model_validate(ctx.api.get("/update"))
    except ValidationError as exc:
        raise ScenarioFailed(f"the update details are not UpdateDetails: {exc}") from None
    ctx.say(f"update available: {details.title} {details.version}")
    for e in details.ecus:
        why = f" ({e.delivery_reason})" if e.delivery_reason else ""
        ctx.say(f"{e.ecu_id}: {e.delivery}{why}")
    return details


def _install_and_succeed(ctx: Ctx, version: str) -> None:
    pre = ctx.api.get("/preconditions")
    failing = [p["id"] for p in pre if not p.get("ok")]
    if failing:
        raise ScenarioFailed(f"preconditions unexpectedly failing: {failing}")
    ctx.api.post("/install", {"confirm": True})
    ctx.say("driver confirmed the installation")
    saw_ponr = False

    def done(st: Status) -> bool:
        nonlocal saw_ponr
        if st.install.point_of_no_return:
            saw_ponr = True
        return st.state in ("succeeded", "failed_rolled_back", "failed_needs_service")

    st = ctx.wait(done, "the end of the installation")
    if st.state != "succeeded":
        raise ScenarioFailed(f"installation ended {st.state} ({st.reason})")
    _check_versions(ctx, version, expect_new=True)


def _check_versions(ctx: Ctx, version: str, *, expect_new: bool) -> None:
    ecus = ctx.api.get("/ecus")
    versions = {e.get("ecu_id"): e.get("version") for e in ecus}
    ctx.say(f"ECU versions: {versions}")
    if expect_new and any(v != version for v in versions.values()):
        raise ScenarioFailed(f"not every ECU runs {version}: {versions}")
    if not expect_new and any(v == version for v in versions.values()):
        raise ScenarioFailed(f"an ECU runs {version} after the rollback: {versions}")


def _soc_published(ctx: Ctx, ecu_id: str = "bms", timeout: float = 10.0) -> None:
    """The ECU's application runs and publishes on the application channel: the BMS example's
    state of charge (channel 1, u16 permille) reaches the gateway's ``/ecus``."""
    deadline = time.monotonic() + timeout
    while True:
        ecu = next((e for e in ctx.api.get("/ecus") if e.get("ecu_id") == ecu_id), None)
        if ecu is None:
            return  # a stack without that ECU
        ev = next((a for a in ecu.get("app") or [] if a.get("chan") == 1), None)
        if ev is not None and len(ev["data"]) == 4:
            soc = int.from_bytes(bytes.fromhex(ev["data"]), "little") / 10
            ctx.say(f"{ecu_id} application: state of charge {soc:g} % ({ev['count']} events)")
            return
        if time.monotonic() > deadline:
            raise ScenarioFailed(f"no application event from {ecu_id} within {timeout:g} s")
        time.sleep(0.2)


def main(ctx: Ctx) -> None:
    """Alise: notification -> Install Update -> download -> confirm -> installed."""
    details = _available(ctx)
    opts = ctx.stack.options
    deltas = [e.ecu_id for e in details.ecus if opts.factory and e.ecu_id in opts.delta_ecus]
    for e in details.ecus:  # the stack's delta ECUs get a patch from the factory release
        if e.ecu_id in deltas and e.delta_from != OLD_VERSION:
            raise ScenarioFailed(f"{e.ecu_id} gets no delta: {e.delivery} ({e.delivery_reason})")
    ctx.api.post("/download")
    ctx.say("driver pressed Install Update")
    ctx.wait_state(*READY)
    _install_and_succeed(ctx, details.version)
    sent = ctx.status().install.ecus
    for ecu_id in deltas:  # what the installer really sent (a fallback would say why)
        p = sent.get(ecu_id)
        if p is None or p.delivery_reason or "delta from" not in (p.delivery or ""):
            why = (p.delivery, p.delivery_reason) if p else None
            raise ScenarioFailed(f"{ecu_id} was not sent its delta: {why}")
        ctx.say(f"{ecu_id} installed: {p.delivery} ({p.sent_bytes} bytes on the line)")
    _soc_published(ctx)


def no_connection_then_retry(ctx: Ctx) -> None:
    """Bob: no connection -> error with Retry -> connection back -> retry -> installed."""
    details = _available(ctx)
    ctx.signal(sig.NETWORK, "none")
    ctx.signal(sig.CONNECTIVITY, False)
    try:
        ctx.api.post("/download")
    except ApiError as exc:
        ctx.say(f"download refused: {exc.code}")
    ctx.wait(
        lambda s: s.state == "download_paused" and s.reason == "no_connection",
        "download_paused (no_connection)",
    )
    ctx.signal(sig.CONNECTIVITY, True)
    ctx.signal(sig.NETWORK, "wifi")
    st = ctx.status()
    if st.state == "download_paused":
        try:
            ctx.api.post("/download/resume")
            ctx.say("driver pressed Retry")
        except ApiError as exc:  # the downloader may have resumed by itself meanwhile
            ctx.say(f"retry not needed: {exc.code}")
    ctx.wait_state(*READY)
    _install_and_succeed(ctx, details.version)


def no_connection_then_schedule(ctx: Ctx) -> None:
    """Bob: no connection -> Schedule for later -> connection back -> installs at that time."""
    details = _available(ctx)
    ctx.signal(sig.NETWORK, "none")
    ctx.signal(sig.CONNECTIVITY, False)
    try:
        ctx.api.post("/download")
    except ApiError as exc:
        ctx.say(f"download refused: {exc.code}")
    ctx.wait(lambda s: s.state == "download_paused", "download_paused")
    at = datetime.now().astimezone() + timedelta(seconds=ctx.stack.options.schedule_in_s)
    ctx.api.put("/schedule", {"at": at.isoformat()})
    ctx.say(f"driver scheduled the installation for {at:%H:%M:%S}")
    ctx.signal(sig.CONNECTIVITY, True)
    ctx.signal(sig.NETWORK, "wifi")
    ctx.wait_state("scheduled", "installing", "installing_committed", "restarting")
    st = ctx.wait(
        lambda s: s.state in ("succeeded", "failed_rolled_back", "failed_needs_service"),
        "the scheduled installation",
    )
    if st.state != "succeeded":
        raise ScenarioFailed(f"scheduled installation ended {st.state}")
    _check_versions(ctx, details.version, expect_new=True)


def preconditions_not_met(ctx: Ctx) -> None:
    """Out of Park and low battery: install refused with each fix; fixed -> installed."""
    details = _available(ctx)
    opts = ctx.stack.options
    for e in details.ecus:  # the stack's delta ECUs get a patch from the factory release
        if opts.factory and e.ecu_id in opts.delta_ecus and e.delta_from != OLD_VERSION:
            raise ScenarioFailed(f"{e.ecu_id} gets no delta: {e.delivery} ({e.delivery_reason})")
    ctx.api.post("/download")
    ctx.wait_state(*READY)
    ctx.signal(sig.GEAR, 127)
    ctx.signal(sig.SOC, 12.0)
    pre = ctx.api.get("/preconditions")
    failing = {p["id"]: p.get("hint") for p in pre if not p.get("ok")}
    ctx.say(f"checklist failing: {failing}")
    if set(failing) != {"park", "battery"} or not all(failing.values()):
        raise ScenarioFailed(f"expected park and battery to fail with hints, got {failing}")
    exc = ctx.expect_refused(
        "POST", "/install", {"confirm": True}, "campaign.preconditions_not_met"
    )
    refused_ids = {p.get("id") for p in exc.problem.get("failing", [])}
    if refused_ids != {"park", "battery"}:
        raise ScenarioFailed(f"refusal lists {refused_ids}, expected park and battery")
    if ctx.status().state not in READY:
        raise ScenarioFailed("a refused install changed the state")
    ctx.signal(sig.GEAR, sig.GEAR_PARK)
    ctx.signal(sig.CABLE, True)
    ctx.say("driver shifted to Park and plugged in")
    _install_and_succeed(ctx, details.version)


def failed_self_test_rollback(ctx: Ctx) -> None:
    """One ECU fails its self-test on the new image: every ECU rolled back, reported."""
    details = _available(ctx)
    before = {e.get("ecu_id"): e.get("version") for e in ctx.api.get("/ecus")}
    ctx.api.post("/download")
    ctx.wait_state(*READY)
    ctx.api.post("/install", {"confirm": True})
    ctx.say("driver confirmed the installation")
    st = ctx.wait(
        lambda s: s.state in ("succeeded", "failed_rolled_back", "failed_needs_service"),
        "the end of the installation",
        timeout=WAIT_S,
    )
    if st.state != "failed_rolled_back":
        raise ScenarioFailed(f"expected failed_rolled_back, got {st.state}")
    after = {e.get("ecu_id"): e.get("version") for e in ctx.api.get("/ecus")}
    ctx.say(f"ECU versions before {before}, after {after}")
    if after != before:
        raise ScenarioFailed(f"ECUs not back on their previous versions: {after} != {before}")
    culprit = ctx.stack.options.fail_selftest
    errors = {e.get("ecu_id"): e.get("last_error") for e in ctx.api.get("/ecus")}
    if culprit is not None and errors.get(culprit) != codes.E_SELFTEST:
        raise ScenarioFailed(f"{culprit} was not rolled back for its self-test: {errors}")
    if culprit is not None and f"ecu_failed:{culprit}:" not in (st.reason or ""):
        raise ScenarioFailed(f"the campaign's reason does not name {culprit}: {st.reason}")
    _check_versions(ctx, details.version, expect_new=False)
    hist = ctx.api.get("/history")
    if not hist:
        raise ScenarioFailed("the failed campaign is missing from the history")


SCENARIOS: dict[str, Callable[[Ctx], None]] = {
    "main": main,
    "no-connection-then-retry": no_connection_then_retry,
    "no-connection-then-schedule": no_connection_then_schedule,
    "preconditions-not-met": preconditions_not_met,
    "failed-self-test-rollback": failed_self_test_rollback,
}


def options_for(name: str, base: DemoOptions | None = None) -> DemoOptions:
    """The stack a scenario needs (the rollback one makes one ECU fail its self-test)."""
    opts = base or DemoOptions()
    if name == "main" and opts.delta_ecus:
        return replace(opts, factory=True)  # the delta ECUs' base: the factory release
    if name == "failed-self-test-rollback":
        ids = [e for e, _hw in opts.ecus]  # faulty.py is a body controller build
        return opts.with_failing_selftest("body" if "body" in ids else ids[-1])
    return opts


def play(name: str, stack: DemoStack) -> tuple[bool, list[str]]:
    """Run scenario ``name`` against a started stack: (ended as it should, transcript)."""
    fn = SCENARIOS[name]
    with ApiClient(stack.url) as api:
        ctx = Ctx(stack, api)
        ctx.say(f"scenario {name}")
        try:
            fn(ctx)
        except ScenarioFailed as exc:
            ctx.say(f"FAILED: {exc}")
            return False, ctx.log
        except ApiError as exc:
            ctx.say(f"FAILED: unexpected API error {exc.code}: {exc}")
            return False, ctx.log
        ctx.say("OK")
        return True, ctx.log
