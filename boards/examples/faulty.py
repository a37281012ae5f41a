# An ECU application for the otalink component (docs/device.md "Writing an ECU application"):
# the demo's failed self-test - a build (of whichever ECU the scenario picks) whose actuator
# check fails on its trial boot, so the update is rolled back at once (E_SELFTEST) to the image
# before it.
#
# What it shows of the contract: a self-test that needs the application running (it drives the
# lock motor and watches the end-stop feedback over a few control periods, which an import-time
# selftest() cannot do), then agent.healthy(False): the agent records the failure and resets;
# the loader boots the previous image (BOOT_REVERTED, last_error E_SELFTEST). On a confirmed
# boot (never reached by this build in the demo) it only keeps its heartbeat.
# Channel map: chan 1 -> b"faulty" (the host can tell it ran, if it ever runs confirmed).
import asyncio
import time

VERSION = "1.0.1"
PERIOD_MS = 10
CHECK_PERIODS = 5  # the end stop must be seen within 50 ms of driving the motor

_feedback = [False]  # the end-stop input: this build reads the wrong pin, it never comes


def on_message(chan, data):
    return b"faulty" if chan == 1 else None


async def _actuator_check():
    for _ in range(CHECK_PERIODS):
        await asyncio.sleep_ms(PERIOD_MS)
        if _feedback[0]:
            return True
    return False


async def main(agent):
    agent.on_message = on_message
    if agent.trial:
        ok = await _actuator_check()
        print("faulty: lock actuator self-test", "passed" if ok else "FAILED")
        agent.healthy(ok)  # False: rolled back now (the agent resets this boot)
    due = time.ticks_add(time.ticks_ms(), PERIOD_MS)
    while True:
        agent.alive()
        due = time.ticks_add(due, PERIOD_MS)
        wait = time.ticks_diff(due, time.ticks_ms())
        await asyncio.sleep_ms(wait if wait > 0 else 0)
