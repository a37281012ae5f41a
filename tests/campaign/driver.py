"""Crash-sweep driver: one host agent process that plays the driver until the campaign ends.

``python -m tests.campaign.driver CONFIG.toml VERSION`` starts the agent (resuming any persisted
state) and presses the buttons: check, download, install (confirmed). It exits 0 when the
campaign of ``VERSION`` reaches a final state and prints that state (a final state of an earlier
campaign is acknowledged first). The sweep SIGKILLs it at many points.
"""

from __future__ import annotations

import sys
import time

from otalink.host.agent import Agent
from otalink.host.campaign.errors import AgentError
from otalink.host.config import load_config

FINAL = ("succeeded", "failed_rolled_back", "failed_needs_service")


def main(argv: list[str]) -> int:
    agent = Agent(load_config(argv[1]))
    agent.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            st = agent.status()["state"]
            try:
                if st == "idle":
                    agent.check()
                elif st == "available":
                    agent.download_start()
                elif st in ("downloaded", "awaiting_confirmation"):
                    agent.install(confirm=True)
                elif st in FINAL:
                    upd = agent.status()["update"] or {}
                    if upd.get("version") != argv[2]:
                        agent.acknowledge()
                        continue
                    print(st, flush=True)
                    return 0
            except AgentError:
                pass  # raced with a worker's transition: look again
            time.sleep(0.02)
        return 1
    finally:
        agent.stop()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
