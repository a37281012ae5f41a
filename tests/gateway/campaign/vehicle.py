"""A whole simulated vehicle for campaign tests: update server, TUF repos, ECUs, agent config.

Everything is real: the trust engineer's repositories and embedded HTTP server (loopback, free
port), the line engineer's paced pty lines (unthrottled here), the device agent under the
MicroPython unix port (``EcuProcess``, restarted on REBOOT like a board).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from otalink.host.gateway.config import AgentConfig, load_config
from otalink.host.keys import KeyPair
from otalink.host.sim.ecusim import EcuProcess, build_bundle, make_ecu_config
from otalink.host.sim.ecusim.process import DEFAULT_HEAP
from otalink.host.sim.line.sim import LineSim
from otalink.host.tools.repo.delta import resolve_base
from otalink.host.tools.repo.quick import RepoSet, create_repos
from otalink.host.tools.server.app import ServerHandle, start_server

VIN = "VIN-TEST-1"
HEAP = DEFAULT_HEAP  # the runner's (see host/sim/ecusim/process.py)


def bundle(ecu_id: str, version: str, ok: bool = True, pad: int = 0) -> bytes:
    """An application bundle whose self-test passes (or fails), padded to a chosen size.

    The padding lives in a module the application never imports: importing a big literal at
    the trial boot needs one large contiguous block of the device's small heap and failed now
    and then (MemoryError -> E_BOOT_CRASH -> a spurious rollback), depending on fragmentation.
    """
    app = (
        f"VERSION = {version!r}\nECU = {ecu_id!r}\ndef selftest():\n    return {ok!r}\n"
    ).encode()
    files = {"app.py": app}
    if pad:
        files["pad.py"] = f"PAD = {random.Random(f'{ecu_id}{version}').randbytes(pad)!r}\n".encode()
    return build_bundle(files, entry="app", selftest="app.selftest")


class Vehicle:
    """Server + repos + ECU processes on lines; ``config_path`` is the agent's TOML."""

    def __init__(
        self,
        root: Path,
        ecu_ids: tuple[str, ...] = ("bms", "adas", "body"),
        baud: int | None = None,
        heap: str = HEAP,
    ) -> None:
        self.root = root
        self.ecu_ids = ecu_ids
        self.repos: RepoSet = create_repos(root / "repos", [VIN])
        self.server_root = root / "www"
        self.repos.publish(self.server_root)
        self.server: ServerHandle = start_server(self.server_root)
        self.keys = {e: KeyPair.generate() for e in ecu_ids}
        self.lines: dict[str, LineSim] = {}
        self.procs: dict[str, EcuProcess] = {}
        director_keys = self.repos.instruction_public_keys()
        for e in ecu_ids:
            line = LineSim(baud=baud).start()
            d = root / "ecu" / e
            d.mkdir(parents=True)
            cfg = make_ecu_config(
                e, f"{e}-hw1", director_keys, self.keys[e].seed, d / "flash.bin", line.device_path
            )
            proc = EcuProcess(cfg, workdir=d, heapsize=heap)
            proc.supervise()
            self.lines[e] = line
            self.procs[e] = proc
        (root / "trust").mkdir()
        (root / "trust" / "image-root.json").write_bytes(self.repos.image.root_bytes())
        (root / "trust" / "director-root.json").write_bytes(self.repos.director(VIN).root_bytes())
        self.config_path = root / "agent.toml"
        self.config_path.write_text(self.toml())

    def toml(self, **policy: Any) -> str:
        """The agent configuration (TOML) for this vehicle."""
        keys = ", ".join(f'"{k.hex()}"' for k in self.repos.instruction_public_keys())
        pol = {"restart_timeout_s": 30, "ecu_timeout_s": 2, **policy}
        lines = [
            "[agent]",
            f'vehicle_id = "{VIN}"',
            'state_dir = "state"',
            f'server_url = "{self.server.url}"',
            "check_interval_s = 0",
            "",
            "[trust]",
            'image_root = "trust/image-root.json"',
            'director_root = "trust/director-root.json"',
            f"instruction_keys = [{keys}]",
            "",
            "[policy]",
            *(f"{k} = {json.dumps(v)}" for k, v in pol.items()),
            "",
        ]
        for e in self.ecu_ids:
            lines += [
                "[[ecu]]",
                f'ecu_id = "{e}"',
                f'hardware_id = "{e}-hw1"',
                f'port = "{self.lines[e].host_path}"',
                f'public_key = "{self.keys[e].public_hex}"',
                "",
            ]
        return "\n".join(lines)

    def config(self) -> AgentConfig:
        return load_config(self.config_path)

    def release(
        self, version: str, counter: int, failing: tuple[str, ...] = (), pad: int = 0
    ) -> dict[str, bytes]:
        """Publish ``version`` for every ECU (self-test failing on ``failing``) and assign it."""
        images = {}
        director = self.repos.director(VIN)
        for e in self.ecu_ids:
            data = bundle(e, version, ok=e not in failing, pad=pad)
            images[e] = data
            img = self.repos.image.add_image(
                f"{e}-{version}.otb",
                data,
                hardware_ids=[f"{e}-hw1"],
                version=version,
                release_counter=counter,
                title=f"{e} application",
                release_notes=f"{e} {version}",
                est_install_s=5,
                unavailable_functions=["charging"] if e == "bms" else [],
                kind="bundle",
            )
            director.assign(e, f"{e}-hw1", img)
        self.repos.publish(self.server_root)
        return images

    def publish(
        self, version: str, counter: int, images: dict[str, bytes], delta_from: str | None = None
    ) -> None:
        """Publish these images as ``version`` and assign them; ``delta_from`` (an earlier
        version): each image also gets a patch from that release, and the Director's
        instruction binds that base (a delta update, issue 13)."""
        director = self.repos.director(VIN)
        for e, data in images.items():
            name = f"{e}-{version}.otb"
            img = self.repos.image.add_image(
                name, data, hardware_ids=[f"{e}-hw1"], version=version,
                release_counter=counter, title=f"{e} application", release_notes=f"{e} {version}",
                est_install_s=5, kind="bundle", delta_from=[delta_from] if delta_from else (),
            )  # fmt: skip
            base = resolve_base(self.repos.image.deltas(name), delta_from) if delta_from else None
            director.assign(e, f"{e}-hw1", img, delta_base=base)
        self.repos.publish(self.server_root)

    def server_reports(self) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.server.url}/reports/{VIN}", timeout=5)
        r.raise_for_status()
        out = r.json()
        return out if isinstance(out, list) else out.get("reports", [])

    def stop(self) -> None:
        for p in self.procs.values():
            p.stop()
        for line in self.lines.values():
            line.stop()
        self.server.stop()


def wait_for(pred: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    """Poll ``pred`` until true or fail with ``what``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
