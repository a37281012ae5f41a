"""``otalink agent --config FILE``: run the host agent daemon (campaign workers + local API).

The local API and screen are ``otalink.host.gateway.api.server.serve(agent, host, port)``;
with ``--no-api`` the agent runs its workers alone until interrupted.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from otalink.host.errors import EXIT_OK, ConfigError, exit_code


def cmd_agent(args: argparse.Namespace) -> int:
    from otalink.host.gateway.api.server import serve
    from otalink.host.gateway.campaign.agent import Agent
    from otalink.host.gateway.config import load_config

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"otalink agent: {exc.detail}", file=sys.stderr)
        return exit_code(exc)
    host = args.host or config.api_host
    port = config.api_port if args.port is None else args.port
    agent = Agent(config)
    agent.start()
    print(
        f"otalink agent: vehicle {config.vehicle_id}, {len(config.ecus)} ECU(s), "
        f"state {agent.view.status().state}, API http://{host}:{port}/",
        file=sys.stderr,
        flush=True,
    )
    done = threading.Event()

    def on_term(_sig: int, _frame: Any) -> None:
        done.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        if args.no_api:
            done.wait()
        else:
            serve(agent, host, port)
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
