"""The one place the benches drive an ECU over its line (``EcuClient``), timed step by step.

    update(rig, image, *, whole=True, version="2.0.0", release_counter=2, compress=None)
        -> UpdateRun
    bench_bundle(payload, version="2.0.0", total=None) -> bytes

``update`` runs, on an ``EcuRig`` (the real agent behind a ``LineSim``): the first HELLO, the
install (BEGIN -> DATA -> END -> verified RESULT, ``EcuClient.install``), and with ``whole`` the
rest of a real update: ACTIVATE, REBOOT, the trial boot (the agent restarts, extracts the bundle
and runs its self-test; the host re-sends HELLO every ``PROBE_S`` until the trial boot answers),
CONFIRM. The clock starts when the first HELLO is written and stops when CONFIRM's RESULT is
read (``whole_seconds``); ``TransferResult.seconds`` (BEGIN to verified) is the narrow figure of
the same run. A STATUS read afterwards (outside the clock) checks that the ECU runs the new image
confirmed, byte for byte.

Every ``EcuClient`` call of the benches goes through this module (``_client`` and the steps
below), so a change of the client's API (e.g. signed commands with a command key) is adapted here
once. The install is the client's uploader: the one transfer engine
(``otalink.protocol.transfer.TxWindow``) that the host agent and ``otalink flash`` drive too.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import asdict, dataclass
from typing import Any

from otalink.host.gateway.ecu.client import EcuClient
from otalink.host.gateway.ecu.errors import EcuError
from otalink.host.gateway.ecu.result import TransferResult
from otalink.host.gateway.ecu.wire import Ack, WireMessage
from otalink.host.sim.ecusim.bundle import build_bundle
from otalink.host.sim.line.rig import EcuRig
from otalink.protocol import codes

PROBE_S = 0.05  # shortest re-HELLO period while the ECU reboots
REBOOT_TIMEOUT_S = 60.0


@dataclass
class UpdateRun:
    """Timings (s) and figures of one update; ``whole_*`` are None for an install only."""

    transfer: TransferResult
    hello_seconds: float  # the first HELLO -> INFO
    begin_ack_seconds: float | None  # BEGIN written -> its ACK read (late on a slow line:
    # the host reads only once the first window is written)
    install_seconds: float  # BEGIN -> verified RESULT (= transfer.seconds)
    activate_seconds: float | None = None
    reboot_seconds: float | None = None  # REBOOT written -> the trial boot answers HELLO
    confirm_seconds: float | None = None
    whole_seconds: float | None = None  # first HELLO written -> CONFIRM's RESULT read
    host_cpu_seconds: float = 0.0  # host thread CPU time of the install
    confirmed: bool | None = None  # STATUS afterwards: new image active and confirmed

    @property
    def ratio(self) -> float | None:
        return self.transfer.ratio

    @property
    def whole_ratio(self) -> float | None:
        baud = self.transfer.baud
        if not baud or not self.whole_seconds:
            return None
        return self.transfer.image_bytes / self.whole_seconds / (baud / 10.0)

    def figures(self) -> dict[str, Any]:
        """Flat JSON-able figures (results.json keys below ``<peer>.<image>.<line>.``)."""
        t = self.transfer
        out: dict[str, Any] = {k: v for k, v in asdict(self).items() if k != "transfer"}
        out.update(
            ratio=self.ratio,
            whole_ratio=self.whole_ratio,
            seconds=t.seconds,
            image_bytes=t.image_bytes,
            wire_bytes=t.wire_bytes,
            tx_bytes=t.tx_bytes,
            rx_bytes=t.rx_bytes,
            compression=t.compression,
            retransmitted_bytes=t.retransmitted_bytes,
            reconnects=t.reconnects,
            frames=t.frames,
        )
        return out


def bench_bundle(payload: bytes, version: str = "2.0.0", total: int | None = None) -> bytes:
    """A bootable application bundle carrying ``payload`` as a data file (never imported).

    The whole update boots what it installed, so the bench images are bundles: an entry module,
    a self-test and the payload. With ``total`` the payload is cut so that the bundle is exactly
    ``total`` bytes long (the random image stays 262144 bytes, as in the earlier figures).
    """
    app = f"VERSION = {version!r}\n".encode()
    check = b"def selftest():\n    import app\n    return bool(app.VERSION)\n"
    files = {"app.py": app, "check.py": check, "blob.mpy": payload}
    if total is not None:
        over = len(build_bundle(files, "app", "check.selftest")) - total
        if over > 0:
            files["blob.mpy"] = payload[: len(payload) - over]
    data = build_bundle(files, "app", "check.selftest")
    if total is not None and len(data) != total:
        raise ValueError(f"bundle of {len(data)} bytes, {total} wanted (payload too short)")
    return data


def _client(rig: EcuRig, **kw: Any) -> EcuClient:
    # The only EcuClient construction of the benches (the rig fills in line, baud, ECU key).
    return rig.client(**kw)


def _hello_until(c: EcuClient, deadline: float, period: float) -> None:
    """HELLO until the ECU answers (it is rebooting: its line is deaf until the agent opens it).

    A HELLO goes out every ``period`` s (each try of ``hello``), all with one nonce, so an INFO
    answering any of them is taken whenever it arrives; ``period`` is the ECU's own HELLO -> INFO
    time (it signs every INFO), so the probes do not queue up behind each other in the ECU.
    """
    nonce = os.urandom(16)
    while True:
        try:
            c.hello(nonce, timeout=period)
            return
        except EcuError:
            if time.monotonic() > deadline:
                raise


def update(
    rig: EcuRig,
    image: bytes,
    *,
    whole: bool = True,
    version: str = "2.0.0",
    release_counter: int = 2,
    compress: bool | None = None,
    kind: int = 0,
) -> UpdateRun:
    """One update of ``image`` on the rig's ECU, timed (see the module docstring)."""
    c = _client(rig)
    instr, sigs = rig.instruction(image, version=version, release_counter=release_counter,
                                  kind=kind)  # fmt: skip
    begin_ack: list[float] = []

    def on_message(m: WireMessage) -> None:
        if isinstance(m, Ack) and not begin_ack:
            begin_ack.append(time.monotonic())

    t0 = time.monotonic()
    c.hello()
    t_hello = time.monotonic()
    c.session.on_message = on_message  # sees every frame read (the first ACK: BEGIN's)
    cpu0 = time.thread_time()
    r = c.install(instr, sigs, image, compress=compress)
    cpu = time.thread_time() - cpu0
    c.session.on_message = None
    t_install = time.monotonic()
    run = UpdateRun(
        transfer=r,
        hello_seconds=t_hello - t0,
        begin_ack_seconds=(begin_ack[0] - (t_install - r.seconds)) if begin_ack else None,
        install_seconds=r.seconds,
        host_cpu_seconds=cpu,
    )
    if not whole:
        return run
    c.activate()
    t_act = time.monotonic()
    c.reboot()
    _hello_until(c, time.monotonic() + REBOOT_TIMEOUT_S, max(PROBE_S, run.hello_seconds))
    t_boot = time.monotonic()
    c.confirm()
    t_end = time.monotonic()
    run.activate_seconds = t_act - t_install
    run.reboot_seconds = t_boot - t_act
    run.confirm_seconds = t_end - t_boot
    run.whole_seconds = t_end - t0
    st = c.status()
    slot = st.slots[st.active_slot]
    sha = hashlib.sha256(image).digest()
    run.confirmed = (
        slot.state == codes.SLOT_CONFIRMED
        and slot.sha256 == sha
        and slot.version == version
        and rig.slot_bytes(st.active_slot, len(image)) == image
    )
    return run


def capabilities(rig: EcuRig) -> dict[str, int]:
    """The ECU's announced caps (INFO), as a dict."""
    return dict(asdict(_client(rig).hello().caps))
