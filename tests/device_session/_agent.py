"""Test harness: a real MicroPython ECU agent on a real pty, driven with the protocol encoder.

``Ecu`` writes an ECU config (board profile boards/unix, flash file and keys under tmp_path),
opens a pty pair (the agent gets the slave path; the test keeps both fds so the line survives
agent restarts, as the ECU runner does) and starts ``micropython -m otalink.device.main``.
``Ecu.request`` frames a payload onto the master side and returns the next decoded message.
``Ecu.command(type)`` builds a signed command over the command nonce the agent reported last
(every INFO / STATUS / RESULT it sends is watched for it); ``Ecu.cmd(type)`` sends one.
"""

from __future__ import annotations

import hashlib
import os
import select
import subprocess
import time
import tty
from pathlib import Path
from typing import Any

import cbor2
from otalink.host.gateway.ecu.commands import dev_command_key
from otalink.host.keys import KeyPair
from otalink.host.sim.ecusim.boardfs import board_lib
from otalink.host.sim.ecusim.bundle import build_bundle
from otalink.host.sim.ecusim.config import make_ecu_config, write_ecu_config
from otalink.protocol import codes, messages
from otalink.protocol.frame import FrameParser, frame

# Heap of the agents in these tests: behaviour, not memory (figures: bench/bench_device.py's
# heap_limit_bytes, 72k for a whole update; memory properties are tested in-process, e.g.
# mp_test_data_errors.py's resume that loads no codec). The ECU runner's default is 80k, but
# where a MicroPython heap runs out also depends on fragmentation, which depends on timing (how
# many polls ran between two requests): under `pytest -n 2` the mid-transfer requests failed
# with E_INTERNAL at 74k and once in CI at 80k, so these exact-answer tests run with 16k above
# the runner's default. (The host's EcuClient answers an E_INTERNAL by resuming.)
HEAP = "96k"
ECU_ID = "bms-1"
HW_ID = "unix-x64-r1"
NOW = 1_780_000_000  # a fixed "now" for instructions (unix s)


def app_bundle(version: str, selftest_ok: bool = True, pad: int = 0) -> bytes:
    """A bundle (device/bundle.py format) whose self-test passes (or fails); ``pad`` adds a data
    module so images can span many frames and flash sectors."""
    app = f"VERSION = {version!r}\n\ndef selftest():\n    return {selftest_ok!r}\n".encode()
    mods = {"app.py": app}
    if pad:
        mods["blob.py"] = b"#" + os.urandom(pad // 2).hex().encode()[: pad - 1]
    return build_bundle(mods, "app", "app.selftest")


class Ecu:
    def __init__(
        self,
        tmp: Path,
        micropython: str,
        mpy_tree: Path,
        heap: str = HEAP,
        director: list[KeyPair] | None = None,
        ecu_key: KeyPair | None = None,
        flash: Path | None = None,
        threshold: int = 1,
        extra: dict[str, Any] | None = None,
        command_key: KeyPair | None = None,
    ) -> None:
        self.tmp = tmp
        self.micropython = micropython
        self.mpy_tree = mpy_tree
        self.heap = heap
        self.ecu_key = ecu_key or KeyPair.generate()
        self.director = director or [KeyPair.generate()]
        self.command_key = command_key or dev_command_key()
        self.cmd_nonce: bytes | None = None  # the agent's, from its latest INFO/STATUS/RESULT
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo/cooking even before the agent opens it
        tty.setraw(self.master)
        self.parser = FrameParser(codes.MAX_PAYLOAD_ABS)
        self.inbox: list[list[Any]] = []
        self.progress: list[list[Any]] = []
        self.cfg_path = tmp / "ecu.json"
        cfg = make_ecu_config(
            ECU_ID,
            HW_ID,
            [k.public for k in self.director],
            self.ecu_key.seed,
            flash or (tmp / "flash.bin"),
            os.ttyname(self.slave),
            threshold=threshold,
            **{"command_keys": [self.command_key.public], **(extra or {})},
        )
        write_ecu_config(cfg, self.cfg_path)
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr = b""
        self.payload = 2048  # negotiated by hello(); the unix board's max_payload until then

    # ---- process ----------------------------------------------------------------------------
    def start(self, env: dict[str, str] | None = None) -> None:
        # the code at lib/ and the config at the root, as a board's filesystem (board_lib)
        e = dict(os.environ, MICROPYPATH=board_lib(self.tmp, self.mpy_tree))
        e.update(env or {})
        self.proc = subprocess.Popen(
            [
                self.micropython,
                "-X",
                f"heapsize={self.heap}",
                "-m",
                "otalink.device.main",
                self.cfg_path.name,
            ],
            cwd=self.tmp,
            env=e,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def wait_exit(self, timeout: float = 10) -> int:
        assert self.proc is not None
        out, err = self.proc.communicate(timeout=timeout)
        self.stderr = out + err
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            if self.proc.poll() is None:
                self.proc.kill()
            # (also when it had exited by itself: what it wrote before it died is the diagnosis)
            out, err = self.proc.communicate(timeout=10)
            self.stderr = out + err
        # the agent's own output, for diagnosis after a failure
        (self.tmp / "agent.log").write_bytes(self.stderr)

    def close(self) -> None:
        self.kill()
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass

    # ---- line -------------------------------------------------------------------------------
    def write(self, raw: bytes) -> None:
        os.write(self.master, raw)

    def send(self, payload: bytes) -> None:
        self.write(frame(payload))

    def recv(self, timeout: float = 5.0) -> list[Any]:
        """The next message from the device (decoded), or AssertionError after timeout."""
        deadline = time.monotonic() + timeout
        while not self.inbox:
            left = deadline - time.monotonic()
            if left <= 0:
                alive = self.proc is not None and self.proc.poll() is None
                raise AssertionError(f"no reply within {timeout}s (agent alive: {alive})")
            r, _, _ = select.select([self.master], [], [], left)
            if r:
                for p in self.parser.feed_all(os.read(self.master, 65536)):
                    m = messages.parse(p, copy=True)
                    self._watch(m)
                    if m[0] == codes.MSG_PROGRESS:
                        self.progress.append(m)  # unsolicited: kept aside
                    else:
                        self.inbox.append(m)
        return self.inbox.pop(0)

    def _watch(self, m: list[Any]) -> None:
        """Keep the command nonce the agent announces (INFO / STATUS body, RESULT)."""
        if m[0] in (codes.MSG_INFO, codes.MSG_STATUS):
            self.cmd_nonce = messages.decode_report(m[1])[messages.R_CMD_NONCE]
        elif m[0] == codes.MSG_RESULT:
            self.cmd_nonce = m[4]

    def request(self, payload: bytes, timeout: float = 5.0) -> list[Any]:
        self.send(payload)
        return self.recv(timeout)

    def quiet(self, seconds: float = 0.3) -> list[list[Any]]:
        """Everything the device says within ``seconds`` (expected: nothing)."""
        out = list(self.inbox)
        self.inbox.clear()
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return out
            r, _, _ = select.select([self.master], [], [], left)
            if r:
                for p in self.parser.feed_all(os.read(self.master, 65536)):
                    m = messages.parse(p, copy=True)
                    self._watch(m)
                    out.append(m)

    # ---- protocol helpers -------------------------------------------------------------------
    def hello(self, nonce: bytes | None = None, max_payload: int = 4096) -> list[Any]:
        """HELLO until INFO (the agent flushes its line when it opens it, as a board's boot
        loses what arrives before its UART is up): retried every 0.25 s for 20 s. Each try
        has its own nonce; once any INFO arrives the line is open, so every later HELLO will be
        answered too: wait for the INFO of the last one and return it (no stray INFO left)."""
        nonces: list[bytes] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            n = nonce if nonce is not None and not nonces else os.urandom(16)
            nonces.append(n)
            self.send(messages.hello(n, max_payload))
            try:
                m = self.recv(0.25)
            except AssertionError:
                assert self.proc is not None and self.proc.poll() is None, self.proc_output()
                continue
            while True:
                assert m[0] == codes.MSG_INFO, m
                got = messages.decode_report(m[1])[messages.R_NONCE]
                assert got in nonces, "INFO for a nonce never sent"
                if got == nonces[-1]:
                    # the negotiated payload: what send_data() fills DATA frames up to
                    caps = messages.decode_report(m[1])[messages.R_CAPS]
                    self.payload = caps[messages.C_MAX_PAYLOAD]
                    return m
                m = self.recv(10)
        raise AssertionError("no INFO")

    def proc_output(self) -> str:
        if self.proc is None:
            return ""
        try:
            out, err = self.proc.communicate(timeout=5)
        except (subprocess.TimeoutExpired, ValueError):
            return ""
        return (out + err).decode(errors="replace")

    def status(self, nonce: bytes | None = None) -> tuple[list[Any], bytes, bytes]:
        nonce = nonce or os.urandom(16)
        m = self.request(messages.status_req(nonce))
        assert m[0] == codes.MSG_STATUS, m
        return messages.decode_report(m[1]), m[1], m[2]

    def instruction(self, image: bytes, **over: Any) -> bytes:
        f: dict[str, Any] = {
            "ecu_id": ECU_ID,
            "hw_id": HW_ID,
            "version": "2.0.0",
            "release_counter": 2,
            "image_len": len(image),
            "sha256": hashlib.sha256(image).digest(),
            "issued": NOW,
            "expires": NOW + 86400,
            "target": "bms-app-2.0.0.bin",
            "kind": 0,
        }
        f.update(over)
        return bytes(messages.encode_instruction(**f))

    def begin(
        self,
        image: bytes,
        instr: bytes | None = None,
        sigs: list[list[bytes]] | None = None,
        image_len: int | None = None,
        sha256: bytes | None = None,
        wire_len: int | None = None,
        compression: int = codes.COMP_NONE,
        timeout: float = 30,
    ) -> list[Any]:
        instr = instr if instr is not None else self.instruction(image)
        if sigs is None:
            sigs = [k.signature_entry(instr) for k in self.director]
        m = messages.begin(
            instr,
            sigs,
            len(image) if image_len is None else image_len,
            hashlib.sha256(image).digest() if sha256 is None else sha256,
            compression,
            len(image) if wire_len is None else wire_len,
        )
        return self.request(m, timeout=timeout)

    def send_data(
        self, wire: bytes, start: int, chunk: int | None = None, window: int = 8192
    ) -> int:
        """Stop-and-wait-free windowed send from ``start`` until every byte is ACKed; returns
        the final ACK offset. Asserts every reply is an ACK. ``chunk``: data bytes per frame,
        by default as many as the payload negotiated by the last HELLO allows."""
        if chunk is None:
            chunk = self.payload - messages.DATA_OVERHEAD
        acked = start
        nxt = start
        inflight = 0
        while acked < len(wire):
            while nxt < len(wire) and nxt + min(chunk, len(wire) - nxt) <= acked + window:
                n = min(chunk, len(wire) - nxt)
                self.send(messages.data(nxt, wire[nxt : nxt + n]))
                nxt += n
                inflight += 1
            m = self.recv(10)
            assert m[0] == codes.MSG_ACK, m
            inflight -= 1
            if m[1] > acked:
                acked = m[1]
            elif inflight == 0 and nxt > acked:
                nxt = acked  # device asked to go back
        return acked

    def transfer(self, image: bytes, **instr: Any) -> list[Any]:
        """BEGIN + all DATA + END; returns the RESULT of END."""
        ack = self.begin(image, instr=self.instruction(image, **instr) if instr else None)
        assert ack[0] == codes.MSG_ACK, ack
        assert self.send_data(image, ack[1]) == len(image)
        return self.request(messages.end(len(image)), timeout=30)

    # ---- signed commands --------------------------------------------------------------------
    def command(
        self,
        mtype: int,
        *,
        key: KeyPair | None = None,
        nonce: bytes | None = None,
        ecu_id: str = ECU_ID,
        inner: int | None = None,
    ) -> bytes:
        """A signed command payload: ``[mtype, cmd, keyid, sig]`` over ``[1, inner or mtype,
        ecu_id, nonce]`` (default: the agent's current nonce), signed by ``key`` (default: the
        command key the agent trusts)."""
        if nonce is None:
            if self.cmd_nonce is None:
                self.status()
            nonce = self.cmd_nonce
        assert nonce is not None
        k = key or self.command_key
        cmd = cbor2.dumps([messages.CMD_FMT, mtype if inner is None else inner, ecu_id, nonce])
        return bytes(messages.command(mtype, cmd, k.keyid, k.sign(cmd)))

    def cmd(self, mtype: int, timeout: float = 10.0) -> list[Any]:
        """Send a properly signed command; its reply."""
        return self.request(self.command(mtype), timeout)

    def reboot(self) -> list[Any]:
        """REBOOT: RESULT OK, the agent exits 64 (reset), and is started again on the same
        flash and line; returns the INFO after the new boot."""
        r = self.cmd(codes.MSG_REBOOT)
        assert r[:4] == [codes.MSG_RESULT, codes.MSG_REBOOT, codes.OK, 0], r
        self.cmd_nonce = None  # the new boot makes a new one
        assert self.wait_exit() == 64, self.stderr
        self.start()
        return self.hello()

    def install(self, image: bytes, version: str, release_counter: int) -> list[Any]:
        """The full update: transfer, ACTIVATE, REBOOT, trial boot, CONFIRM; returns the
        decoded STATUS body afterwards."""
        r = self.transfer(image, version=version, release_counter=release_counter)
        assert r[:4] == [codes.MSG_RESULT, codes.MSG_END, codes.OK, 0], r
        r = self.cmd(codes.MSG_ACTIVATE)
        assert r[:4] == [codes.MSG_RESULT, codes.MSG_ACTIVATE, codes.OK, 0], r
        info = messages.decode_report(self.reboot()[1])
        assert info[messages.R_BOOT_STATE] == codes.BOOT_TRIAL, info
        r = self.cmd(codes.MSG_CONFIRM)
        assert r[:4] == [codes.MSG_RESULT, codes.MSG_CONFIRM, codes.OK, 0], r
        return self.status()[0]
