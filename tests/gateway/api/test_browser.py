"""The infotainment screen in a real browser against the real stack (MicroPython ECUs).

Each test clicks through one story on the page the agent serves, changing the simulated
vehicle through the API as the world would (connection lost, shifted out of Park ...), checks
what the driver sees, and saves each screen under ``test-artifacts/screens/``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from otalink.host.gateway.vehicle import signals as sig

from tests.sim.demo.conftest import StackFactory, api, copy_to_docs, wait_status

pytestmark = pytest.mark.browser

# (test prefix, screen) pairs copied to docs/img/ for the README
README_SHOTS = {
    ("main", "available"),
    ("main", "details"),
    ("main", "downloading"),
    ("main", "confirm"),
    ("main", "installing"),
    ("main", "complete"),
    ("no_connection_retry_then_stop", "no-connection"),
    ("cellular_preconditions_missed_schedule", "preconditions"),
    ("no_connection_schedule", "scheduled"),
    ("failed_self_test_rollback", "rolled-back"),
}


class Screen:
    """A browser page on the stack's screen, with helpers that fail with context."""

    def __init__(self, page: Any, shots: Path, prefix: str) -> None:
        self.page = page
        self.shots = shots
        self.prefix = prefix
        self.errors: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self, url: str, countdown: int = 1) -> None:
        self.page.goto(f"{url}/?countdown={countdown}")

    def wait(self, *screens: str, timeout: float = 60.0) -> str:
        sel = ", ".join(f"body[data-screen={s}]" for s in screens)
        self.page.wait_for_selector(sel, state="attached", timeout=timeout * 1000)
        return str(self.page.evaluate("document.body.dataset.screen"))

    def click(self, action: str) -> None:
        self.page.click(f"[data-action={action}]:visible")

    def text(self) -> str:
        return str(self.page.inner_text("body"))

    def shot(self, name: str) -> Path:
        path = self.shots / f"{self.prefix}-{name}.png"
        self.page.screenshot(path=str(path))
        if (self.prefix, name) in README_SHOTS:
            copy_to_docs(path, name)
        return path


@pytest.fixture
def screen(browser: Any, screens_dir: Path, request: pytest.FixtureRequest) -> Iterator[Screen]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 720}, locale="en-GB")
    page = ctx.new_page()
    prefix = request.node.name.removeprefix("test_")
    s = Screen(page, screens_dir, prefix.split("_")[0] if prefix.startswith("main") else prefix)
    yield s
    ctx.close()
    assert not s.errors, f"JavaScript errors on the page: {s.errors}"


def put_signals(stack: Any, **values: Any) -> None:
    paths = {
        "network": sig.NETWORK,
        "connectivity": sig.CONNECTIVITY,
        "gear": sig.GEAR,
        "soc": sig.SOC,
        "nav": sig.NAV_GUIDANCE,
        "cruise": sig.ADAS_CRUISE,
        "consent": sig.CONSENT,
        "cable": sig.CABLE,
    }
    with api(stack) as c:
        r = c.put("/signals", json={"signals": {paths[k]: v for k, v in values.items()}})
        assert r.status_code == 200, r.text


def test_main_story(make_stack: StackFactory, screen: Screen) -> None:
    """Notification -> details -> Install Update -> download -> confirm -> install -> done."""
    stack = make_stack(server_rate_bps=40 * 1024, baud=57_600)
    screen.open(stack.url, countdown=2)
    screen.wait("available")
    assert "Software update available" in screen.text()
    assert "Winter range update" in screen.text()
    screen.shot("available")

    screen.click("details")
    screen.wait("details")
    body = screen.text()
    assert "What's new" in body and "range in cold weather" in body
    assert "Unavailable while installing" in body and "Climate control" in body
    assert re.search(r"Installation takes about\s+\d+ (s|min)", body)
    assert re.search(r"\d+(\.\d)? kB", body)  # download size
    # what each ECU really gets (no factory release here to patch from: the full images)
    sent = screen.page.inner_text("#deliveries")
    assert "What is sent" in body and re.search(r"bms: \d+ kB, full image", sent), sent
    screen.shot("details")

    screen.click("install-update")
    screen.wait("downloading")
    pct = screen.page.inner_text("#dl-percent")
    assert re.fullmatch(r"\d+ %", pct), pct
    assert re.search(r"kB of \d", screen.page.inner_text("#dl-mb"))
    eta = screen.page.inner_text("#dl-eta")
    assert re.search(r"left|calculating", eta), eta
    assert "stays drivable" in screen.text()
    screen.shot("downloading")

    screen.wait("confirm")
    assert screen.page.locator("#checklist li.ok").count() == 8
    assert screen.page.locator("#checklist li.bad").count() == 0
    assert screen.page.is_enabled("[data-action=install-now]")
    screen.shot("confirm")

    screen.click("install-now")
    screen.wait("countdown")
    assert screen.page.inner_text("#countdown").strip() in ("1", "2")
    screen.shot("countdown")

    screen.wait("installing", timeout=20)
    screen.page.wait_for_function(
        "document.body.dataset.screen !== 'installing' ||"
        " !document.querySelector('#inst-percent').textContent.startsWith('0 ')"
    )
    assert screen.wait("installing") == "installing"
    body = screen.text()
    assert "DO NOT DRIVE" in body
    for ecu in ("bms", "body", "adas"):
        assert screen.page.locator(f"li[data-ecu={ecu}]").count() == 1
    screen.shot("installing")

    screen.wait("complete", timeout=60)
    body = screen.text()
    assert "Update complete" in body and "range in cold weather" in body
    screen.shot("complete")
    with api(stack) as c:
        versions = {e["ecu_id"]: e["version"] for e in c.get("/ecus").json()}
    assert versions == {"bms": "2.0.0", "body": "2.0.0", "adas": "2.0.0"}
    screen.click("acknowledge")
    screen.wait("up-to-date")
    screen.shot("up-to-date")


def test_no_connection_retry_then_stop(make_stack: StackFactory, screen: Screen) -> None:
    """Bob: no connection (Retry, Schedule offered), link back -> continues by itself;
    then the driver stops the install before the point of no return: nothing changed."""
    from otalink.host.gateway.config import PolicyConfig

    # slow line: time to press Stop before the point of no return; patient ECU requests,
    # as the second install follows an aborted one
    stack = make_stack(baud=9_600, policy=PolicyConfig(ecu_timeout_s=5.0))
    put_signals(stack, network="none", connectivity=False)
    screen.open(stack.url, countdown=0)
    screen.wait("available")
    screen.click("install-update")
    screen.wait("no-connection")
    body = screen.text()
    assert "No stable connection" in body and "stable Wi-Fi or cellular connection" in body
    assert screen.page.is_visible("#screen [data-action=retry]")
    assert screen.page.is_visible("#screen [data-action=schedule-open]")
    screen.shot("no-connection")

    screen.click("retry")  # still offline: the same error stays
    time.sleep(0.5)
    assert screen.wait("no-connection") == "no-connection"

    put_signals(stack, network="wifi", connectivity=True)
    screen.wait("confirm", timeout=30)  # the download continued by itself

    screen.click("install-now")
    screen.wait("installing")
    screen.click("cancel-install")
    screen.wait("stopped")
    body = screen.text()
    assert "Installation stopped" in body and "Nothing was changed" in body
    assert "You stopped the installation" in body
    screen.shot("stopped")
    with api(stack) as c:
        assert c.get("/status").json()["state"] == "downloaded"
        versions = {e["ecu_id"]: e["version"] for e in c.get("/ecus").json()}
    assert "2.0.0" not in versions.values()
    screen.click("dismiss")
    screen.wait("confirm")

    # again, and this time the car is shifted out of Park during the install
    screen.click("install-now")
    screen.wait("installing")
    put_signals(stack, gear=127)
    screen.wait("stopped")
    assert "Nothing was changed" in screen.text()
    assert "shifted out of Park" in screen.page.inner_text("#stop-reason")
    assert "Shift to Park" in screen.text()
    screen.shot("stopped-out-of-park")


def test_no_connection_schedule(make_stack: StackFactory, screen: Screen) -> None:
    """Bob schedules for later from the error screen; chip with change/cancel."""
    stack = make_stack()
    put_signals(stack, network="none", connectivity=False)
    screen.open(stack.url)
    screen.wait("available")
    screen.click("install-update")
    screen.wait("no-connection")
    screen.click("schedule-open")
    assert screen.page.is_visible("#picker")
    screen.shot("schedule-picker")
    screen.page.click("[data-action=pick][data-in]")  # "In 1 hour"
    screen.page.wait_for_selector("#chip:not([hidden])")
    chip = screen.page.inner_text("#chip-text")
    assert chip.startswith("Scheduled for"), chip
    with api(stack) as c:
        assert c.get("/schedule").json()["at"]

    put_signals(stack, network="wifi", connectivity=True)
    # the download continues by itself; the schedule rides along until it is done
    screen.wait("scheduled", timeout=30)
    title = screen.page.inner_text("#scheduled-title")
    assert re.search(r"Installation scheduled for (tomorrow )?\d\d:\d\d", title), title
    screen.shot("scheduled")

    screen.click("schedule-open")  # change: pick 02:00
    screen.page.click("[data-action=pick][data-time='02:00']")
    screen.page.wait_for_function(
        "document.querySelector('#chip-text').textContent.includes('02:00')"
    )
    screen.shot("scheduled-0200")
    screen.page.click("#chip [data-action=unschedule]")
    screen.wait("confirm")
    assert screen.page.is_hidden("#chip")


def test_cellular_preconditions_missed_schedule(make_stack: StackFactory, screen: Screen) -> None:
    """Metered link asks first; each failing precondition shows its fix, live; a schedule
    missed because the car was not in Park says why."""
    stack = make_stack()
    put_signals(stack, network="cellular")
    screen.open(stack.url)
    screen.wait("available")
    screen.click("install-update")
    screen.wait("cellular")
    assert "Download over cellular?" in screen.text()
    screen.shot("cellular")
    screen.click("allow-cellular")
    screen.wait("downloading", "confirm")
    screen.wait("confirm", timeout=30)

    put_signals(stack, gear=127, soc=10.0, nav=True, cruise=True, consent=False)
    screen.wait("preconditions")
    screen.page.wait_for_function("document.querySelectorAll('#checklist li.bad').length === 5")
    body = screen.text()
    for fix in (
        "Shift to Park",
        "Charge to 30 % or plug in",
        "End navigation",
        "Turn off driver assistance",
        "Enable OTA updates in your account",
    ):
        assert fix in body, fix
    assert screen.page.is_disabled("[data-action=install-now]")
    screen.shot("preconditions")

    put_signals(stack, soc=80.0, nav=False, cruise=False, consent=True)
    screen.page.wait_for_function("document.querySelectorAll('#checklist li.bad').length === 1")
    assert screen.page.is_disabled("[data-action=install-now]")
    assert "Shift to Park" in screen.text()

    with api(stack) as c:
        at = time.time() + 2
        from datetime import datetime

        iso = datetime.fromtimestamp(at, UTC).isoformat()
        assert c.put("/schedule", json={"at": iso}).status_code == 200
    screen.wait("missed-schedule", timeout=20)
    reasons = screen.page.inner_text("#missed-reasons")
    assert "Car in Park" in reasons and "Shift to Park" in reasons
    assert "Next try at" in screen.text()
    screen.shot("missed-schedule")
    wait_status(stack, lambda s: s["state"] == "scheduled" and s["schedule"]["attempts"] == 1)


def test_failed_self_test_rollback(make_stack: StackFactory, screen: Screen) -> None:
    """The adas image fails its self-test: everything rolled back, the screen says so."""
    stack = make_stack(fail_selftest="adas", factory=True)
    screen.open(stack.url, countdown=0)
    screen.wait("available")
    screen.click("install-update")
    screen.wait("confirm", timeout=30)
    screen.click("install-now")
    screen.wait("rolled-back", timeout=60)
    body = screen.text()
    assert "Update not installed" in body and "restored to the" in body
    assert "adas" in screen.page.inner_text("#fail-reason")
    screen.shot("rolled-back")
    with api(stack) as c:
        versions = {e["ecu_id"]: e["version"] for e in c.get("/ecus").json()}
    assert versions == {"bms": "1.0.0", "body": "1.0.0", "adas": "1.0.0"}
    screen.click("acknowledge")
    screen.wait("up-to-date")


def test_point_of_no_return_then_needs_service(make_stack: StackFactory, screen: Screen) -> None:
    """After the point of no return there is no Stop (and the screen says why); an ECU that
    never comes back from its restart ends in 'service needed'."""
    from otalink.host.gateway.config import PolicyConfig

    stack = make_stack(policy=PolicyConfig(restart_timeout_s=4.0, ecu_timeout_s=2.0))
    screen.open(stack.url, countdown=0)
    screen.wait("available")
    screen.click("install-update")
    screen.wait("confirm", timeout=30)
    victim = next(e for e in stack.ecus if e.ecu_id == "body")
    victim.proc.power_off_at_next_reset()  # the REBOOT after activation is its last
    screen.click("install-now")
    screen.wait("restarting", timeout=30)
    screen.page.wait_for_selector("#ponr")
    assert "can no longer be stopped" in screen.page.inner_text("#ponr")
    assert "DO NOT DRIVE" in screen.text()
    assert screen.page.locator("[data-action=cancel-install]").count() == 0
    screen.shot("point-of-no-return")
    with api(stack) as c:
        body = c.post("/cancel").json()
    assert body["code"] == "campaign.point_of_no_return", body
    assert "inconsistent" in body["detail"]
    screen.wait("needs-service", timeout=30)
    body_text = screen.text()
    assert "Service needed" in body_text and "contact service" in body_text
    assert "body" in screen.page.inner_text("#fail-reason")
    screen.shot("needs-service")
