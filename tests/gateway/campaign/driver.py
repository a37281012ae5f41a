"""Crash-sweep driver: one host agent process that plays the driver until the campaign ends.

``python -m tests.gateway.campaign.driver CONFIG.toml VERSION`` starts the agent (resuming any
persisted state) and presses the buttons: check, download, install (confirmed). It exits when the
campaign of ``VERSION`` reaches a final state (a final state of an earlier campaign is acknowledged
first) with status 0 for succeeded, 10 for failed_rolled_back, 11 for failed_needs_service.

``python -m tests.gateway.campaign.driver --zygote`` imports everything once, then forks one fresh
driver process per ``run CONFIG VERSION`` line on stdin, answering ``pid N`` and ``exit RC``:
each run is still a separate process the sweep SIGKILLs, without paying the interpreter start.
"""

from __future__ import annotations

import os
import sys
import time
import traceback

from otalink.host.errors import CampaignError
from otalink.host.gateway.campaign.agent import Agent
from otalink.host.gateway.config import load_config

HOLD_S = 0.15
FINAL = {"succeeded": 0, "failed_rolled_back": 10, "failed_needs_service": 11}


def drive(config: str, version: str) -> int:
    agent = Agent(load_config(config))
    # Hold each ECU step after the point of no return a little (like a slower ECU) so the
    # sweep's kills can land inside installing_committed on a loaded machine too; it is only a
    # few hundred ms out of the commit, between the steps the crash-safety argument is about.
    agent.events.add_listener(
        lambda ev: time.sleep(HOLD_S) if ev["type"] in ("ecu_activate", "ecu_reboot") else None
    )
    agent.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            st = agent.view.status().state
            try:
                if st == "idle":
                    agent.commands.check()
                elif st == "available":
                    agent.commands.download_start()
                elif st in ("downloaded", "awaiting_confirmation"):
                    agent.commands.install(confirm=True)
                elif st in FINAL:
                    upd = agent.view.status().update
                    if upd is None or upd.version != version:
                        agent.commands.acknowledge()
                        continue
                    return FINAL[st]
            except CampaignError:
                pass  # raced with a worker's transition: look again
            time.sleep(0.02)
        print(f"driver: stuck in {agent.view.status()}", file=sys.stderr, flush=True)
        return 1
    finally:
        agent.stop()


def zygote() -> int:
    for line in sys.stdin:
        cmd = line.split()
        if len(cmd) != 3 or cmd[0] != "run":
            continue
        pid = os.fork()
        if pid == 0:
            rc = 1
            try:
                rc = drive(cmd[1], cmd[2])
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(rc)
        print(f"pid {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"exit {os.waitstatus_to_exitcode(status)}", flush=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--zygote"]:
        raise SystemExit(zygote())
    raise SystemExit(drive(sys.argv[1], sys.argv[2]))
