"""One emulated ECU behind a line simulator: what tests, benches and demos put on a bench.

Public interface (stable):
    EcuRig(workdir, *, ecu_id="ecu-1", hw_id="hw-unix-1", baud=115200, latency_s=0.0,
           faults=None, seed=1, heapsize=DEFAULT_HEAP, director=None, ecu_key=None,
           config_extra=None, command_key=None)
      .start(wait=True) / .stop() / context manager   LineSim + supervised EcuProcess (real
           agent); start waits until the agent answers HELLO (.wait_ready(timeout))
      .sim: LineSim   .proc: EcuProcess   .flash: FlashFile   .director / .ecu_key: KeyPair
      .command_key: KeyPair   the key the ECU trusts for signed commands (default: the dev key)
      .client(**kw) -> EcuClient              on the host side of the line, verifying reports
                                              and signing commands with .command_key
      .instruction(image, version="2.0.0", release_counter=2, kind=0, stream=None)
           -> tuple[bytes, list[tuple[bytes, bytes]]]   signed install instruction + sigs
      .slot_bytes(slot, n) -> bytes             what the flash file holds
      .reset()                                   kill the agent; the supervisor boots it again
      .peak_heap() -> int | None                 highest live heap the agent reported (memtrace)
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path
from typing import Any

from otalink.host.gateway.ecu.client import EcuClient
from otalink.host.gateway.ecu.commands import dev_command_key
from otalink.host.gateway.ecu.errors import EcuError
from otalink.host.keys import KeyPair
from otalink.host.sim.ecusim import EcuProcess, FlashFile, board_geometry, make_ecu_config
from otalink.host.sim.line.faults import FaultConfig
from otalink.host.sim.line.sim import LineSim
from otalink.protocol import messages

# The heap the agent runs with on a rig: the unix board's budget, 80k since the ECU component
# (issue 11; 64k before); override with OTALINK_RIG_HEAP.
DEFAULT_HEAP = os.environ.get("OTALINK_RIG_HEAP", "80k")


class EcuRig:
    """A real MicroPython ECU agent on the device side of a ``LineSim``."""

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        *,
        ecu_id: str = "ecu-1",
        hw_id: str = "hw-unix-1",
        baud: int | None = 115200,
        latency_s: float = 0.0,
        faults: FaultConfig | None = None,
        seed: int = 1,
        heapsize: str | None = None,
        director: KeyPair | None = None,
        ecu_key: KeyPair | None = None,
        config_extra: dict[str, Any] | None = None,
        command_key: KeyPair | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ecu_id = ecu_id
        self.hw_id = hw_id
        self.baud = baud
        self.director = director or KeyPair.generate()
        self.ecu_key = ecu_key or KeyPair.generate()
        self.command_key = command_key or dev_command_key()
        self.sim = LineSim(baud=baud, latency_s=latency_s, faults=faults, seed=seed)
        self.flash_path = self.workdir / "flash.bin"
        cfg = make_ecu_config(
            ecu_id,
            hw_id,
            [self.director.public],
            self.ecu_key.seed,
            self.flash_path,
            self.sim.device_path,
            **{"command_keys": [self.command_key.public], **(config_extra or {})},
        )
        self.config = cfg
        self.proc = EcuProcess(cfg, workdir=self.workdir, heapsize=heapsize or DEFAULT_HEAP)
        self.flash = FlashFile(self.flash_path, board_geometry("unix"))
        self._clients: list[EcuClient] = []

    def start(self, wait: bool = True, timeout: float = 30.0) -> EcuRig:
        """Start the line and the agent; with ``wait``, return once the agent answers HELLO.
        An agent that never answers (a heap too small for it): the rig is stopped before the
        error is raised, so no ECU process outlives a failed start (``with rig`` never calls
        ``__exit__`` when ``__enter__`` raises)."""
        self.sim.start()
        self.proc.supervise()
        if wait:
            try:
                self.wait_ready(timeout)
            except BaseException:
                self.stop()
                raise
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until the agent answers HELLO (it flushes its input when it opens the line)."""
        end = time.monotonic() + timeout
        wait = 0.1  # grows: a loaded machine slows the agent's start and its signing
        while True:
            with EcuClient(self.sim.host_path, baud=self.baud, timeout=wait) as probe:
                try:
                    probe.hello()
                    return
                except EcuError:
                    if time.monotonic() > end:
                        raise
            wait = min(2.0, wait * 2)

    def stop(self) -> None:
        for c in self._clients:
            c.close()
        self._clients.clear()
        self.proc.stop()
        self.sim.stop()

    def __enter__(self) -> EcuRig:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self, **kw: Any) -> EcuClient:
        """An ``EcuClient`` on the host side of the line (closed with the rig)."""
        kw.setdefault("baud", self.baud)
        kw.setdefault("verify_key", self.ecu_key.public)
        kw.setdefault("command_key", self.command_key.seed)
        c = EcuClient(self.sim.host_path, **kw)
        self._clients.append(c)
        return c

    def instruction(
        self,
        image: bytes,
        version: str = "2.0.0",
        release_counter: int = 2,
        kind: int = 0,
        *,
        ecu_id: str | None = None,
        hw_id: str | None = None,
        expires_in: int = 86400,
        signer: KeyPair | None = None,
    ) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        """A bench install instruction for ``image``, signed by the rig's Director key."""
        now = int(time.time())
        instr = bytes(
            messages.encode_instruction(
                ecu_id or self.ecu_id,
                hw_id or self.hw_id,
                version,
                release_counter,
                len(image),
                hashlib.sha256(image).digest(),
                now - 60,
                now + expires_in,
                f"{self.ecu_id}-{version}.bin",
                kind,
            )
        )
        key = signer or self.director
        return instr, [(key.keyid, key.sign(instr))]

    def slot_bytes(self, slot: int, n: int) -> bytes:
        return self.flash.slot_bytes(slot, n)

    def reset(self) -> None:
        """A device reset: SIGKILL the agent; the supervisor starts it again on the same line."""
        boots = self.proc.boots
        self.sim.flush_device_input()
        self.proc.power_cut()
        self.proc.wait_boots(boots + 1, timeout=10)

    def peak_heap(self) -> int | None:
        """Highest live heap the agent printed (config ``memtrace``), or None."""
        out = self.proc.output()
        # every number the trace prints (bench/memtrace.py: start=, live= after a message or
        # inside a request, peak_live= at exit; a process that is killed never prints the last)
        vals = [int(v) for v in re.findall(r"otalink-mem (?:start|live|peak_live)=(\d+)", out)]
        return max(vals) if vals else None
