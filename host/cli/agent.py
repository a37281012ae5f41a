"""``otalink agent --config FILE``: run the host agent daemon (campaign workers + local API).

The local API/screen is the ui engineer's ``otalink.host.api.server.serve(agent, host, port)``;
without it the agent still runs its workers until interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from typing import Any

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def cmd_agent(args: argparse.Namespace) -> int:
    from otalink.host.agent import Agent
    from otalink.host.campaign.errors import ConfigError
    from otalink.host.config import load_config

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"otalink agent: {exc.detail}", file=sys.stderr)
        return EXIT_USAGE
    host = args.host or config.api_host
    port = config.api_port if args.port is None else args.port
    agent = Agent(config)
    agent.start()
    print(
        f"otalink agent: vehicle {config.vehicle_id}, {len(config.ecus)} ECU(s), "
        f"state {agent.status()['state']}, API http://{host}:{port}/",
        file=sys.stderr,
        flush=True,
    )
    done = threading.Event()

    def on_term(_sig: int, _frame: Any) -> None:
        done.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        serve: Any = None
        if not args.no_api:
            try:
                serve = importlib.import_module("otalink.host.api.server").serve
            except ModuleNotFoundError:
                serve = None
        if serve is not None:
            serve(agent, host, port)
        else:
            done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        agent.stop()
    return EXIT_OK


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "agent",
        help="run the host agent (campaign + local API/screen)",
        description="Run the host agent daemon with the given TOML configuration.",
    )
    p.add_argument("--config", required=True, help="agent configuration (TOML)")
    p.add_argument("--host", default=None, help="API listen address (loopback only)")
    p.add_argument("--port", type=int, default=None, help="API port (default from config)")
    p.add_argument("--no-api", action="store_true", help="run the workers without the API")
    p.set_defaults(func=cmd_agent)
