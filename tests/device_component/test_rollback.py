"""A trial application that fails is rolled back by the loader, after the watchdog / the boot
count, with its own reason (issue 11, part 3): a hung application (`while True: pass`), one that
starves the event loop (a blocking sleep), one that raises at start, one that exhausts the heap,
one that fails at import. Real loader, agent and application under the ECU runner's emulated
watchdog; the rollback is read from the flash (FlashFile) and from the fallback's INFO."""

from __future__ import annotations

from pathlib import Path

import pytest
from otalink.protocol import codes as C
from otalink.protocol import messages as M

from tests.device_component._ecu import app, image
from tests.device_component.conftest import Base, make

N = 2  # trial boots in these tests (config flash.trial_boots)

HUNG = app("""
async def main(agent):
    agent.alive()
    while True:
        pass
""")
STARVES = app("""
async def main(agent):
    while True:
        agent.alive()
        time.sleep_ms(5000)  # blocks the loop: nothing else runs
""")
RAISES = app("""
async def main(agent):
    raise RuntimeError("boom at start")
""")
EXHAUSTS = app("""
async def main(agent):
    hog = []
    while True:
        hog.append(bytearray(1024))
        agent.alive()
        await asyncio.sleep_ms(0)
""")
IMPORT_FAILS = app("""
raise ImportError("a module the application needs is missing")
""")


@pytest.mark.parametrize(
    ("src", "reason", "wdt"),
    [
        (HUNG, C.E_WATCHDOG, True),
        (STARVES, C.E_WATCHDOG, True),
        (RAISES, C.E_APP_CRASH, False),
        (EXHAUSTS, C.E_APP_MEMORY, False),
        (IMPORT_FAILS, C.E_APP_FAILED, False),
    ],
    ids=["hung", "starves-the-loop", "raises-at-start", "exhausts-the-heap", "import-fails"],
)
def test_failing_trial_application_is_rolled_back_with_its_reason(
    base: Base, tmp_path: Path, src: bytes, reason: int, wdt: bool
) -> None:
    e = make(base, tmp_path, extra={"flash": {"trial_boots": N}})
    try:
        e.start()
        e.hello()
        e.to_trial(image(src, agent_version="1.0.1"), "2.0.0", 2)
        st = e.wait_reverted()
        old, new = st.slots[st.active], st.slots[1 - st.active]
        assert (old.version, old.state) == ("1.0.0", C.SLOT_CONFIRMED), st
        assert (new.version, new.state) == ("2.0.0", C.SLOT_REJECTED), st
        assert st.last_error == reason, (st.last_error, e.output()[-2000:])
        assert st.release_floor == 1
        # the trial got its N boots; the watchdog's resets are the runner's, counted apart
        assert new.boots == N
        causes = e.runner.causes
        if wdt:
            assert e.runner.wdt_resets >= N and causes.count("wdt") >= N, causes
        else:
            assert e.runner.wdt_resets == 0 and "wdt" not in causes, causes
        # the fallback runs its application and answers: INFO shows why
        info = e.info()
        assert info[M.R_BOOT_STATE] == C.BOOT_REVERTED and info[M.R_LAST_ERROR] == reason
        assert info[M.R_AGENT_VERSION] == "1.0.0"
        assert info[M.R_APP][M.A_STATE] == C.APP_STARTED  # (confirmed: no self-test to run)
    finally:
        e.close()
