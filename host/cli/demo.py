"""``otalink demo [--scenario NAME]``: the embedded default, interactive or headless.

Without ``--scenario`` it starts the whole stack (``otalink.host.sim.demo.stack``), prints the
screen's URL and how to play the alternative scenarios, and runs until Ctrl-C. With
``--scenario NAME`` it plays that scenario from start to end without a browser and exits 0 only
if the system ended as the scenario says (1 otherwise; 2 for an unknown name).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from otalink.host.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE

HELP_TEXT = """\
otalink demo is running.

  Infotainment screen:  {url}/
  Local API:            {url}/api/v1/status   (schema: {url}/api/v1/openapi.json)
  Update server:        {server}
  ECUs:                 {ecus}

Play the story on the screen: "Software update available" -> Install Update -> confirm.
Alternative scenarios (in another terminal; OTALINK_API is {url}):

  export OTALINK_API={url}
  otalink sim set Vehicle.Connectivity.Network none         # cut the connection (then: wifi)
  otalink sim set Vehicle.Connectivity.Network cellular     # metered: the screen asks first
  otalink sim set Vehicle.Powertrain.Transmission.SelectedGear 127   # shift out of Park (126 = P)
  otalink sim set Vehicle.Powertrain.TractionBattery.StateOfCharge.Current 10   # low battery
  otalink sim set Vehicle.Cabin.Infotainment.Navigation.IsGuidanceActive true   # navigating
  otalink status --watch        otalink preconditions        otalink events --follow

Headless: otalink demo --scenario NAME  ({names})
Ctrl-C stops everything.
"""


def _run_interactive(args: argparse.Namespace) -> int:
    from otalink.host.sim.demo.stack import DemoOptions, DemoStack

    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="otalink-demo-"))
    opts = DemoOptions(api_port=args.port)
    if args.fail_selftest:
        opts = opts.with_failing_selftest(args.fail_selftest)
    print(f"otalink demo: building the release and starting the vehicle in {workdir} ...")
    stack = DemoStack(workdir, opts)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stack.start()
        print(_help(stack), flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    finally:
        print("otalink demo: stopping ...", file=sys.stderr)
        stack.stop()
    return EXIT_OK


def _help(stack: Any) -> str:
    from otalink.host.sim.demo.scenarios import SCENARIOS

    return HELP_TEXT.format(
        url=stack.url,
        server=stack.server.url if stack.server else "?",
        ecus=", ".join(f"{e.ecu_id} on {e.host_port}" for e in stack.ecus),
        names=", ".join(SCENARIOS),
    )


def _run_scenario(args: argparse.Namespace) -> int:
    from otalink.host.sim.demo.scenarios import SCENARIOS, options_for, play
    from otalink.host.sim.demo.stack import FAST, DemoOptions, DemoStack

    name = args.scenario
    if name not in SCENARIOS:
        print(f"otalink demo: unknown scenario {name!r}; one of: {', '.join(SCENARIOS)}")
        return EXIT_USAGE
    base = FAST if args.fast else DemoOptions()
    with tempfile.TemporaryDirectory(prefix="otalink-scenario-") as tmp:
        workdir = Path(args.workdir) if args.workdir else Path(tmp)
        stack = DemoStack(workdir, options_for(name, base))
        try:
            stack.start()
            ok, log = play(name, stack)
        finally:
            stack.stop()
    if args.json:
        print(json.dumps({"scenario": name, "ok": ok, "log": log}, ensure_ascii=False))
    else:
        for line in log:
            print(line)
    return EXIT_OK if ok else EXIT_FAILURE


def cmd_demo(args: argparse.Namespace) -> int:
    if args.scenario:
        return _run_scenario(args)
    return _run_interactive(args)


def register(subparsers: Any) -> None:
    """Add ``otalink demo``."""
    p = subparsers.add_parser("demo", help="the embedded default: server, vehicle, ECUs, screen")
    p.add_argument("--scenario", metavar="NAME", help="play a scenario headless and exit")
    p.add_argument("--port", type=int, default=8765, help="screen/API port (default 8765)")
    p.add_argument("--workdir", help="keep the demo's files here (default: a temp dir)")
    p.add_argument("--fail-selftest", metavar="ECU", help="make this ECU's new image fail")
    p.add_argument("--fast", action="store_true", help="small images, unpaced lines")
    p.add_argument("--json", action="store_true", help="scenario transcript as JSON")
    p.set_defaults(func=cmd_demo)
