"""Building blocks of the demo stack: the signed release, one ECU, the host agent.

Each function uses the other packages' public interfaces only: ``repo.quick`` (keys, Image +
Director repositories), ``ecusim`` (bundle builder, ECU config, MicroPython runner),
``line.sim.LineSim`` (paced pty pairs), ``config.AgentConfig`` + ``agent.Agent``.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey
from otalink.host.gateway.config import AgentConfig, EcuConfig, PolicyConfig
from otalink.host.gateway.vehicle.signals import Value
from otalink.host.sim.ecusim import APP_HEAP, EcuProcess, build_image, make_ecu_config
from otalink.host.sim.ecusim.config import ROOT
from otalink.host.sim.line.sim import LineSim
from otalink.host.tools.repo.delta import resolve_base
from otalink.host.tools.repo.quick import RepoSet, create_repos, open_repos

# The demo's ECUs run the example applications of boards/examples (docs/device.md "Writing an
# ECU application") beside the agent, in format-2 images; a release sets the application's
# VERSION. An ECU id not listed runs the BMS example.
EXAMPLES = ROOT / "boards" / "examples"
APPS = {"bms": "bms.py", "body": "body.py", "adas": "adas.py"}
FAILING_APP = "faulty.py"  # the failed self-test: a build whose trial reports healthy(False)
_VERSION_LINE = re.compile(rb'^VERSION = "[^"]*"$', re.MULTILINE)


@dataclass(frozen=True)
class EcuSpec:
    """One ECU of the release: identity, report key seed, and its new image."""

    ecu_id: str
    hw_id: str
    seed: bytes  # ed25519 seed of the ECU's report key

    @property
    def public_key(self) -> bytes:
        return bytes(SigningKey(self.seed).verify_key)


@dataclass
class Release:
    """What the stack needs to know about the published release."""

    repos: RepoSet
    server_root: Path
    ecus: list[EcuSpec]
    instruction_keys: list[bytes]
    image_root: Path
    director_root: Path
    version: str


def app_source(ecu_id: str, version: str, failing: bool = False) -> bytes:
    """The application ``ecu_id`` runs in release ``version`` (``failing``: the faulty build)."""
    name = FAILING_APP if failing else APPS.get(ecu_id, APPS["bms"])
    src = (EXAMPLES / name).read_bytes()
    out, n = _VERSION_LINE.subn(f'VERSION = "{version}"'.encode(), src, count=1)
    if n != 1:
        raise ValueError(f"{name}: no VERSION line")
    return out


def _bundle(
    ecu_id: str, version: str, size: int, ok: bool, agent: Mapping[str, bytes] | None = None
) -> bytes:
    """A format-2 image: the example application of ``ecu_id`` beside the agent tree (``agent``:
    these agent files instead of the staging tree's), padded to about ``size`` bytes when
    smaller (padding in a module never imported)."""
    modules = {"app.py": app_source(ecu_id, version, failing=not ok)}
    tree: bool | dict[str, bytes] = True if agent is None else dict(agent)
    image = build_image(modules, "app", agent=tree)
    if len(image) + 512 >= size:
        return image
    rng = random.Random(f"{ecu_id}/{version}")
    # hex of random bytes: realistic (poorly compressible) payload, still valid text
    modules["assets.py"] = (
        "# " + rng.randbytes((size - len(image) - 512) // 2).hex() + "\n"
    ).encode()
    return build_image(modules, "app", agent=tree)


def _seed(vehicle_id: str, ecu_id: str) -> bytes:
    return hashlib.sha256(f"otalink-demo-ecu-key/{vehicle_id}/{ecu_id}".encode()).digest()


def build_release(
    repo_dir: Path,
    server_root: Path,
    vehicle_id: str,
    *,
    ecus: Sequence[tuple[str, str]],
    version: str,
    image_size: int,
    title: str,
    release_notes: str,
    unavailable: Iterable[str],
    est_install_s: int,
    fail_selftest: str | None,
    bundle_dir: Path,
    agents: Mapping[str, Mapping[str, bytes]] | None = None,
    delta_from: Mapping[str, str] | None = None,
) -> Release:
    """Keys and repositories (made once), then the signed ``version`` release for every ECU,
    assigned to the vehicle by its Director and published into ``server_root``. ``agents``:
    ECU id -> the agent files its image carries (default: the staging tree's agent).
    ``delta_from``: ECU id -> an earlier version: its image also gets a patch from that
    release and the Director's instruction binds that base (a delta update, issue 13)."""
    if (repo_dir / "image").exists():
        repos = open_repos(repo_dir)
    else:
        repos = create_repos(repo_dir, [vehicle_id])
    director = repos.director(vehicle_id)
    bundle_dir.mkdir(parents=True, exist_ok=True)
    specs: list[EcuSpec] = []
    for ecu_id, hw_id in ecus:
        name = f"{ecu_id}-{version}.otb"
        agent = (agents or {}).get(ecu_id)
        data = _bundle(ecu_id, version, image_size, ok=ecu_id != fail_selftest, agent=agent)
        (bundle_dir / name).write_bytes(data)
        image = repos.image.add_image(
            name,
            data,
            hardware_ids=[hw_id],
            version=version,
            release_counter=_counter(version),
            title=title,
            release_notes=release_notes,
            est_install_s=est_install_s,
            unavailable_functions=list(unavailable),
            kind="bundle",
            delta_from=[base] if (base := (delta_from or {}).get(ecu_id)) else (),
        )
        bound = resolve_base(repos.image.deltas(name), base) if base else None
        director.assign(ecu_id, hw_id, image, delta_base=bound)
        specs.append(EcuSpec(ecu_id, hw_id, _seed(vehicle_id, ecu_id)))
    repos.publish(server_root)
    roots = repo_dir / "roots"
    roots.mkdir(parents=True, exist_ok=True)
    image_root = roots / "image-root.json"
    director_root = roots / "director-root.json"
    if not image_root.exists():  # the roots the vehicle was manufactured with
        image_root.write_bytes(repos.image.root_bytes())
        director_root.write_bytes(director.root_bytes())
    return Release(
        repos=repos,
        server_root=server_root,
        ecus=specs,
        instruction_keys=repos.instruction_public_keys(),
        image_root=image_root,
        director_root=director_root,
        version=version,
    )


def _counter(version: str) -> int:
    """Release counter from a dotted version (2.0.0 -> 20000)."""
    parts = [int(p) for p in version.split(".")[:3]] + [0, 0, 0]
    return parts[0] * 10000 + parts[1] * 100 + parts[2]


class Ecu:
    """One simulated ECU: the device agent under MicroPython behind a paced line."""

    def __init__(self, spec: EcuSpec, workdir: Path, line: LineSim, proc: EcuProcess) -> None:
        self.spec = spec
        self.workdir = workdir
        self.line = line
        self.proc = proc

    @property
    def ecu_id(self) -> str:
        return self.spec.ecu_id

    @property
    def host_port(self) -> str:
        """The serial port the host agent opens."""
        return str(self.line.host_path)

    def stop(self) -> None:
        try:
            self.proc.stop()
        finally:
            self.line.stop()


def start_ecu(
    spec: EcuSpec,
    workdir: Path,
    *,
    baud: int | None,
    instruction_keys: Sequence[bytes],
    heapsize: str | None = None,
) -> Ecu:
    """Start the line and the device agent (supervised: a REBOOT restarts it like a board)."""
    workdir.mkdir(parents=True, exist_ok=True)
    line = LineSim(baud=baud).start()
    try:
        cfg = make_ecu_config(
            spec.ecu_id,
            spec.hw_id,
            list(instruction_keys),
            spec.seed,
            workdir / "flash.bin",
            line.device_path,
            bundle_dir=str(workdir / "apps"),
        )
        proc = EcuProcess(
            cfg, workdir=workdir, log_path=workdir / "ecu.log", heapsize=heapsize or APP_HEAP
        )
        proc.supervise()
    except BaseException:
        line.stop()
        raise
    return Ecu(spec, workdir, line, proc)


def agent_config(
    state_dir: Path,
    vehicle_id: str,
    server_url: str,
    release: Release,
    ecus: Sequence[Ecu],
    *,
    baud: int | None,
    policy: PolicyConfig | None = None,
) -> AgentConfig:
    """The host agent's configuration for this stack (what ``agent.toml`` would say)."""
    return AgentConfig(
        vehicle_id=vehicle_id,
        state_dir=state_dir,
        server_url=server_url,
        check_interval_s=0.0,
        ecus=tuple(
            EcuConfig(e.ecu_id, e.spec.hw_id, e.host_port, e.spec.public_key, baud=baud or 115200)
            for e in ecus
        ),
        policy=policy or PolicyConfig(),
        trust={
            "image_root": str(release.image_root),
            "director_root": str(release.director_root),
            "instruction_keys": [k.hex() for k in release.instruction_keys],
        },
        base_dir=state_dir,
    )


def start_agent(config: AgentConfig, signals: Mapping[str, Value]) -> Any:
    """Create and start the host agent with the simulated vehicle's signals set."""
    from otalink.host.gateway.campaign.agent import Agent

    agent = Agent(config)
    for path, value in signals.items():
        agent.signals.set(path, value)
    agent.start()
    return agent


def _wait(agent: Any, states: tuple[str, ...], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        st = agent.view.status()
        if st.state in states:
            return st
        if time.monotonic() > deadline:
            raise RuntimeError(f"factory install: stuck in {st.state} ({st.reason})")
        time.sleep(0.05)


def factory_install(agent: Any, timeout: float = 120.0) -> None:
    """Program the factory release into every ECU through the agent (a real campaign)."""
    agent.commands.check()
    _wait(agent, ("available",), timeout)
    agent.commands.download_start()
    _wait(agent, ("downloaded", "awaiting_confirmation"), timeout)
    agent.commands.install(confirm=True)
    st = _wait(agent, ("succeeded", "failed_rolled_back", "failed_needs_service"), timeout)
    if st.state != "succeeded":
        raise RuntimeError(f"factory install ended {st.state} ({st.reason})")
    agent.commands.acknowledge()
