"""The embedded default, assembled: update server, vehicle, three ECUs, host agent + screen.

``DemoStack(workdir, options).start()`` brings up, in this process and its children:

1. keys + an Image repository and a Director repository for one vehicle (``repo.quick``), a
   signed release for three ECUs whose images are built with the ECU runner's bundle
   builder (``host/sim/ecusim``), published into the root of the embedded update server
   (``server.app.start_server``, loopback, optional throttle so progress is visible);
2. three ECUs: the loader, the real device agent and the ECU's example application
   (boards/examples: bms, body, adas, in format-2 images) under the MicroPython unix port
   (``ecusim`` runner, its emulated watchdog), each behind a paced serial line
   (``line.sim.LineSim``: two ptys relayed at ``baud``);
3. the host agent (``otalink.host.gateway.campaign.agent.Agent``) with a simulated vehicle
   parked, charged, on Wi-Fi with a registered, consenting driver, and its local API + screen
   (``api.server``).

Everything binds loopback port 0 unless told otherwise; ``stop()`` ends it all. The demo, the
headless scenarios and the tests all use this one class.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from otalink.host.gateway.api.server import ApiServer
from otalink.host.gateway.config import PolicyConfig
from otalink.host.gateway.vehicle import signals as sig
from otalink.host.sim.demo import parts
from otalink.host.tools.server.app import ServerHandle, start_server

VEHICLE_ID = "VIN-DEMO-0001"
OLD_VERSION = "1.0.0"
NEW_VERSION = "2.0.0"
TITLE = "Winter range update"
RELEASE_NOTES = (
    "• Up to 12 km more range in cold weather (battery preconditioning)\n"
    "• Smoother regenerative braking below 20 km/h\n"
    "• Door modules: faster unlock on approach\n"
    "• Security fixes"
)
UNAVAILABLE = ("Driving", "Charging", "Climate control", "Remote app")


@dataclass(frozen=True)
class DemoOptions:
    """How the stack is built (the demo's defaults; tests shrink images and speed lines up)."""

    ecus: tuple[tuple[str, str], ...] = (
        ("bms", "bms-v1"),
        ("body", "body-v1"),
        ("adas", "adas-v1"),
    )
    image_size: int = 48 * 1024  # images are padded up to this (the agent tree alone is ~60 KB)
    baud: int | None = 230_400
    server_rate_bps: int | None = 64 * 1024  # the download takes a few visible seconds
    api_port: int = 0
    fail_selftest: str | None = None  # ECU id whose new image is faulty.py (fails its trial)
    # ECU id -> the agent files its new image carries (ecusim.agent_tree(version=...), a newer
    # agent: the campaign's receive probe before CONFIRM); default: the staging tree's agent
    new_agents: Mapping[str, Mapping[str, bytes]] = field(default_factory=dict)
    schedule_in_s: float = 4.0  # scenario "no-connection-then-schedule": install this soon
    est_install_s: int = 90
    # MicroPython heap of each ECU (None = the runner's APP_HEAP: an application beside the agent)
    heapsize: str | None = None
    factory: bool = True  # ECUs first get the factory release 1.0.0 (so a rollback has a target)
    # ECUs whose new release is also published as a patch from the factory release (with
    # ``factory``), their instructions binding that base: the vehicle sends them a delta
    delta_ecus: tuple[str, ...] = ("bms",)
    signals: dict[str, sig.Value] = field(default_factory=dict)  # overrides of parked defaults
    policy: PolicyConfig = field(default_factory=lambda: PolicyConfig(restart_timeout_s=30.0))

    def with_failing_selftest(self, ecu_id: str) -> DemoOptions:
        """The same stack, ``ecu_id``'s new image failing its self-test (factory image first,
        so there is a version to roll back to)."""
        return replace(self, fail_selftest=ecu_id, factory=True)


FAST = DemoOptions(
    image_size=12 * 1024,
    baud=None,
    server_rate_bps=256 * 1024,
    est_install_s=20,
    factory=False,
    # a HELLO sent while an ECU is still rebooting is lost: retry after 3 s, not 5
    policy=PolicyConfig(restart_timeout_s=30.0, ecu_timeout_s=3.0),
)


class DemoStack:
    """All parts of the demo; start/stop, plus handles the tests and scenarios use."""

    def __init__(self, workdir: Path | str, options: DemoOptions | None = None) -> None:
        self.workdir = Path(workdir)
        self.options = options or DemoOptions()
        self.server: ServerHandle | None = None
        self.ecus: list[parts.Ecu] = []
        self.agent: Any = None
        self.api: ApiServer | None = None
        self._stoppers: list[Callable[[], None]] = []

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL of the agent's API and screen."""
        if self.api is None:
            raise RuntimeError("stack not started")
        return self.api.url

    def start(self) -> DemoStack:
        """Build the release, start server, ECUs, agent and API; returns self."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _release(
        self, version: str, title: str, notes: str, fail: str | None, new: bool = True,
        delta_from: Mapping[str, str] | None = None,
    ) -> parts.Release:  # fmt: skip
        o = self.options
        return parts.build_release(
            self.workdir / "repos",
            self.workdir / "server-root",
            VEHICLE_ID,
            ecus=o.ecus,
            version=version,
            image_size=o.image_size,
            title=title,
            release_notes=notes,
            unavailable=UNAVAILABLE,
            est_install_s=o.est_install_s,
            fail_selftest=fail,
            bundle_dir=self.workdir / "bundles",
            agents=o.new_agents if new else None,
            delta_from=delta_from,
        )

    def _start(self) -> None:
        o = self.options
        self.workdir.mkdir(parents=True, exist_ok=True)
        if o.factory:
            release = self._release(
                OLD_VERSION, "Factory software", "Factory software.", None, new=False
            )
        else:
            release = self._release(NEW_VERSION, TITLE, RELEASE_NOTES, o.fail_selftest)
        self.server = start_server(
            release.server_root, rate_bps=o.server_rate_bps, test_controls=True
        )
        self._stoppers.append(self.server.stop)
        for spec in release.ecus:
            ecu = parts.start_ecu(
                spec,
                self.workdir / "ecus" / spec.ecu_id,
                baud=o.baud,
                instruction_keys=release.instruction_keys,
                heapsize=o.heapsize,
            )
            self.ecus.append(ecu)
            self._stoppers.append(ecu.stop)
        self.config = parts.agent_config(
            self.workdir / "agent",
            VEHICLE_ID,
            self.server.url,
            release,
            self.ecus,
            baud=o.baud,
            policy=o.policy,
        )
        self.agent = parts.start_agent(self.config, {**sig.PARKED_DEFAULTS, **o.signals})
        self._stoppers.append(self.agent.stop)
        if o.factory:
            self.server.set_rate(None)
            parts.factory_install(self.agent)
            self.server.set_rate(o.server_rate_bps)
            bases = {e: OLD_VERSION for e in o.delta_ecus}
            self._release(NEW_VERSION, TITLE, RELEASE_NOTES, o.fail_selftest, delta_from=bases)
        # "no connection" is real: the update server drops the vehicle's connections while the
        # simulated vehicle has no network (as a tunnel or a dead zone would).
        self.agent.signals.subscribe(self._on_signal)
        self.agent.commands.check()
        self.api = ApiServer(self.agent, port=o.api_port).start()
        self._stoppers.append(self.api.stop)

    def _on_signal(self, reading: Any) -> None:
        if self.server is None:
            return
        if reading.path in (sig.NETWORK, sig.CONNECTIVITY):
            net = self.agent.signals.get(sig.NETWORK)
            conn = self.agent.signals.get(sig.CONNECTIVITY)
            offline = (net is not None and net.value == "none") or (
                conn is not None and conn.value is False
            )
            self.server.set_offline(offline)

    def stop(self) -> None:
        """Stop everything started, newest first (idempotent)."""
        while self._stoppers:
            fn = self._stoppers.pop()
            try:
                fn()
            except Exception:
                pass

    def __enter__(self) -> DemoStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def remove(self) -> None:
        """Stop and delete the work directory."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
