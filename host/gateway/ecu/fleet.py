"""Fleet orchestration: the vehicle's ECUs, one ``EcuClient`` per line, driven in parallel.

All-or-nothing: ``transfer`` brings every ECU to a verified inactive slot (skipping ECUs whose
signed report already shows the image verified, activated or running: nothing is flashed twice;
interrupted transfers resume at the device-reported durable offset). Only then does the campaign
pass the point of no return (first ACTIVATE). ``activate``/``reboot``/``settle``/``confirm``/
``revert`` act on the state each ECU *reports* (signed, fresh nonce), so every step is safe to
repeat after a host crash.

Public interface (stable; what the campaign calls):
    Fleet(ecus, factory=None, on_progress=None, log=None, now=time.time, monotonic=time.monotonic,
          defer_max_s=300.0)
      ``now``/``monotonic``: the campaign's clock (report times; the progress rate limit)
      ``defer_max_s``: how long an ECU application's DEFER of the transfer is retried
      on_progress(ecu_id, ProgressNote)    log(event type, FleetNote)
      .lines: dict[str, Line]   .close()   .reports(ids=None, fresh=False)
      .transfer(assignments, images, should_stop)   raises StopRequested / FleetError
      .abort(ids)
      .activate / .reboot / .confirm / .revert(assignments) -> dict[ecu_id, str]
      .settle(assignments, timeout) -> dict[ecu_id, str]   .wait_old(assignments, timeout)
    The per-ECU values are ``Found`` members (``state.py``; strings: ``Found.TRIAL == "trial"``)
    or, from ``revert``, ``REVERT_REFUSED + <error code>`` for an ECU that refused the REVERT.
    StopRequested(reason)
    From ``line.py``: Line, LineHealth, HEALTH_WINDOW, FleetError, ClientFactory,
    default_client (and the callbacks' ProgressNote, FleetNote); from ``state.py``: Found,
    classify, runs_old, POST_BOOT and the Found members under their old names (CONFIRMED,
    TRIAL, PENDING, VERIFIED, REJECTED, RECEIVING, ABSENT, UNREACHABLE).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from otalink.host.gateway.config import EcuConfig
from otalink.host.gateway.ecu.defer import retry_deferred
from otalink.host.gateway.ecu.errors import EcuDeferred, EcuError, EcuLinkError, EcuRejected
from otalink.host.gateway.ecu.info import EcuInfo
from otalink.host.gateway.ecu.line import (
    HEALTH_WINDOW,
    ClientFactory,
    FleetError,
    FleetNote,
    Line,
    LineHealth,
    ProgressNote,
    default_client,
)
from otalink.host.gateway.ecu.send import Patch, Send, TransferResult, send_image
from otalink.host.gateway.ecu.state import POST_BOOT, Found, classify, runs_old
from otalink.host.gateway.update.types import EcuAssignment
from otalink.protocol import codes

__all__ = [
    "ABSENT", "CONFIRMED", "HEALTH_WINDOW", "PENDING", "POST_BOOT", "RECEIVING", "REJECTED",
    "REVERT_REFUSED", "TRIAL", "UNREACHABLE", "VERIFIED", "ClientFactory", "Fleet",
    "FleetError", "Found", "Line", "LineHealth", "StopRequested", "classify", "default_client",
    "runs_old",
]  # fmt: skip

T = TypeVar("T")

CONFIRMED = Found.CONFIRMED
TRIAL = Found.TRIAL
PENDING = Found.PENDING
VERIFIED = Found.VERIFIED
REJECTED = Found.REJECTED
RECEIVING = Found.RECEIVING
ABSENT = Found.ABSENT
UNREACHABLE = Found.UNREACHABLE
REVERT_REFUSED = "revert_refused:"  # revert(): prefix of the device's refusal code


class StopRequested(Exception):
    """Raised inside a transfer when the campaign must stop (precondition, cancel): control
    flow inside the campaign, never reported as an error."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Fleet:
    """The vehicle's ECU lines; every public method acts on all given ECUs in parallel."""

    def __init__(
        self,
        ecus: Iterable[EcuConfig],
        factory: ClientFactory | None = None,
        on_progress: Callable[[str, ProgressNote], None] | None = None,
        log: Callable[[str, FleetNote], None] | None = None,
        now: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        defer_max_s: float = 300.0,
    ) -> None:
        make = factory or default_client
        self.defer_max_s = defer_max_s
        self.lines: dict[str, Line] = {e.ecu_id: Line(e, make, now) for e in ecus}
        self._monotonic = monotonic
        self._on_progress = on_progress or (lambda _id, _d: None)
        self._log = log or (lambda _t, _d: None)

    def close(self) -> None:
        for line in self.lines.values():
            line.close()

    # ---- helpers ---------------------------------------------------------------------------
    def _each(self, ids: Iterable[str], fn: Callable[[Line], T]) -> dict[str, T | BaseException]:
        """Run ``fn`` on each line in its own thread; results or exceptions by ECU id."""
        ids = list(ids)
        out: dict[str, T | BaseException] = {}
        if not ids:
            return out

        def run(ecu_id: str) -> T:
            line = self.lines[ecu_id]
            with line.lock:
                return fn(line)

        with ThreadPoolExecutor(max_workers=len(ids), thread_name_prefix="ecu") as pool:
            futs = {i: pool.submit(run, i) for i in ids}
            for i, f in futs.items():
                try:
                    out[i] = f.result()
                except BaseException as exc:  # collected, re-raised by the caller as needed
                    out[i] = exc
        return out

    def reports(
        self, ids: Iterable[str] | None = None, fresh: bool = False
    ) -> dict[str, EcuInfo | BaseException]:
        """Signed reports (or the exception) of the given ECUs (default: all)."""
        return self._each(ids or list(self.lines), lambda ln: ln.report(fresh_session=fresh))

    # ---- before the point of no return -------------------------------------------------------
    def transfer(
        self,
        assignments: list[EcuAssignment],
        images: dict[str, Path],
        should_stop: Callable[[], str | None],
        send: Send | None = None,
    ) -> None:
        """Bring every assigned ECU to a verified inactive slot (parallel, resumable).

        Raises StopRequested when ``should_stop`` returns a reason, FleetError when an ECU
        refuses or its line fails; in both cases the other transfers stop too. ``send``: what is
        installed from each downloaded path (``send.py``; default: the file as the image)."""
        stop_flag: list[str] = []

        def check_stop() -> None:
            if stop_flag:
                raise StopRequested(stop_flag[0])
            reason = should_stop()
            if reason:
                stop_flag.append(reason)
                raise StopRequested(reason)

        def one(line: Line, a: EcuAssignment) -> str:
            ecu = a.ecu_id
            info = line.report()
            cls = classify(info, a)
            if cls in (Found.VERIFIED, Found.PENDING, Found.TRIAL, Found.CONFIRMED):
                self._on_progress(ecu, {"phase": "verified", "percent": 100.0})
                self._log("ecu_transfer_skipped", {"ecu_id": ecu, "found": cls})
                return cls
            if cls == Found.REJECTED:
                raise FleetError(ecu, "fleet.image_rejected", "the ECU rejected this image before")
            check_stop()
            self._on_progress(ecu, {"phase": "transferring", "percent": 0.0})
            last = [-1.0]

            def progress(done: int, total: int) -> None:
                pct = 100.0 * done / total if total else 100.0
                now = self._monotonic()
                if last[0] < 0:  # first call: the offset the device granted (resume point)
                    self._log("ecu_transfer_start", {"ecu_id": ecu, "offset": done, "total": total})
                if now - last[0] >= 0.1 or done >= total:
                    last[0] = now
                    self._on_progress(
                        ecu, {"phase": "transferring", "percent": round(pct, 1), "offset": done}
                    )
                check_stop()

            def deferred(exc: EcuDeferred, pause: float) -> None:
                self._log("ecu_deferred", {"ecu_id": ecu, "reason": exc.reason, "seconds": pause})
                self._on_progress(ecu, {"phase": "deferred", "percent": 0.0, "reason": exc.reason})

            def install(image: bytes | Patch) -> TransferResult:
                return retry_deferred(
                    lambda: line.client().install(
                        a.instruction, list(a.instruction_sigs), image, progress=progress
                    ),
                    max_s=self.defer_max_s,
                    on_defer=deferred,
                    wait=lambda pause: line.idle(pause, check_stop),
                )

            res = (send or send_image)(line, a, images[ecu], install)
            self._log(
                "ecu_transfer_done",
                {
                    "ecu_id": ecu,
                    "resumed_from": res.resumed_from,
                    "wire_bytes": res.wire_bytes,
                    "sent_bytes": res.wire_bytes - res.resumed_from + res.retransmitted_bytes,
                    "seconds": round(res.seconds, 3),
                },
            )
            self._on_progress(ecu, {"phase": "verified", "percent": 100.0})
            return Found.VERIFIED

        by_id = {a.ecu_id: a for a in assignments}

        def run(line: Line) -> str:
            try:
                return one(line, by_id[line.cfg.ecu_id])
            except StopRequested:
                raise
            except BaseException:
                if not stop_flag:
                    stop_flag.append("ecu_failed")
                raise

        results = self._each(by_id, run)
        errors = {i: r for i, r in results.items() if isinstance(r, BaseException)}
        if not errors:
            return
        for i, exc in errors.items():
            if isinstance(exc, FleetError):
                raise exc
            if isinstance(exc, EcuError):
                raise FleetError(i, exc.code, str(exc)) from exc
        for exc in errors.values():
            if isinstance(exc, StopRequested):
                raise exc
        i, exc = next(iter(errors.items()))
        raise FleetError(i, "fleet.internal", repr(exc)) from exc

    def abort(self, ids: Iterable[str]) -> None:
        """ABORT any transfer in progress (best effort; the active slot is never touched)."""

        def one(line: Line) -> None:
            line.client().abort()

        self._each(ids, one)

    # ---- after it -----------------------------------------------------------------------------
    def activate(self, assignments: list[EcuAssignment]) -> dict[str, str]:
        """ACTIVATE each ECU whose report shows the verified image (idempotent by report)."""

        def one(line: Line, a: EcuAssignment) -> str:
            cls = classify(line.report(), a)
            if cls == Found.VERIFIED:
                self._log("ecu_activate", {"ecu_id": a.ecu_id})
                line.client().activate()
                cls = classify(line.report(), a)
            self._on_progress(a.ecu_id, {"phase": "activated", "percent": 100.0})
            return cls

        return self._run_assigned(assignments, one)

    def reboot(self, assignments: list[EcuAssignment]) -> dict[str, str]:
        """REBOOT each ECU whose new image is pending (a lost reply is fine: it reboots)."""

        def one(line: Line, a: EcuAssignment) -> str:
            cls = classify(line.report(), a)
            if cls == Found.PENDING:
                self._log("ecu_reboot", {"ecu_id": a.ecu_id})
                try:
                    line.client().reboot()
                except EcuLinkError:
                    pass  # the device may reset before its RESULT gets out
                line.restarted()  # the next request opens a new session
            self._on_progress(a.ecu_id, {"phase": "restarting", "percent": 100.0})
            return cls

        return self._run_assigned(assignments, one)

    def settle(
        self, assignments: list[EcuAssignment], timeout: float, poll: float = 0.3
    ) -> dict[str, str]:
        """Wait until every ECU answers with a post-boot state; returns the classification
        (``unreachable`` for ECUs still silent at ``timeout``)."""
        deadline = time.monotonic() + timeout
        final: dict[str, str] = {}
        todo = list(assignments)
        while todo:
            res = self._run_assigned(todo, lambda ln, a: classify(ln.hello_until(deadline), a))
            nxt = []
            for a in todo:
                cls = res.get(a.ecu_id, Found.UNREACHABLE)
                if cls in POST_BOOT or (cls == Found.ABSENT and self._old(a)):
                    final[a.ecu_id] = cls
                else:
                    nxt.append(a)
            todo = nxt
            if not todo or time.monotonic() >= deadline:
                break
            time.sleep(poll)
        for a in todo:
            final[a.ecu_id] = Found.UNREACHABLE
        return final

    def _old(self, a: EcuAssignment) -> bool:
        rep = self.lines[a.ecu_id].last_report
        return rep is not None and runs_old(rep, a)

    def confirm(self, assignments: list[EcuAssignment]) -> dict[str, str]:
        """CONFIRM each ECU on trial; returns the classification after it."""

        def one(line: Line, a: EcuAssignment) -> str:
            cls = classify(line.report(), a)
            if cls == Found.TRIAL:
                self._log("ecu_confirm", {"ecu_id": a.ecu_id})
                line.client().confirm()
                cls = classify(line.report(), a)
            if cls == Found.CONFIRMED:
                self._on_progress(a.ecu_id, {"phase": "confirmed", "percent": 100.0})
            return cls

        return self._run_assigned(assignments, one)

    def revert(self, assignments: list[EcuAssignment]) -> dict[str, str]:
        """REVERT each ECU that runs the new image on trial or would boot it (pending).

        An ECU that already rolled back by itself (REJECTED) is left alone; a confirmed one
        cannot be reverted (the caller ends in failed_needs_service). An ECU that refuses the
        REVERT (e.g. ``E_NO_IMAGE``: no confirmed image to go back to) is returned as
        ``REVERT_REFUSED + code`` so the caller does not wait for it to come back. A reverted
        trial is then rebooted (REVERT takes effect at the next boot: until then the rejected
        image's agent and application would go on running)."""

        def one(line: Line, a: EcuAssignment) -> str:
            info = line.report()
            cls = classify(info, a)
            if cls in (Found.TRIAL, Found.PENDING):
                self._log("ecu_revert", {"ecu_id": a.ecu_id, "from": cls})
                try:
                    line.client().revert()
                    if cls == Found.TRIAL:
                        line.client().reboot()
                except EcuRejected as exc:
                    self._log("ecu_revert_refused", {"ecu_id": a.ecu_id, "code": exc.code})
                    return REVERT_REFUSED + exc.code
                except EcuLinkError:
                    pass  # may reset while reverting; settle() below finds out
                line.restarted()
            self._on_progress(a.ecu_id, {"phase": "reverted", "percent": 100.0})
            return cls

        return self._run_assigned(assignments, one)

    def wait_old(self, assignments: list[EcuAssignment], timeout: float) -> dict[str, bool]:
        """Poll until every ECU runs a confirmed image that is not the new one.

        An ECU that answers with no confirmed image in any slot (and not on the new image) has
        nothing to go back to: it is False at once instead of being waited for."""
        deadline = time.monotonic() + timeout
        done: dict[str, bool] = {a.ecu_id: False for a in assignments}
        hopeless: set[str] = set()

        def one(ln: Line, a: EcuAssignment) -> str:
            info = ln.hello_until(deadline)
            if runs_old(info, a):
                return "old"
            if classify(info, a) not in (Found.TRIAL, Found.PENDING, Found.CONFIRMED) and not any(
                s.state == codes.SLOT_CONFIRMED for s in info.slots
            ):
                return "hopeless"
            return "wait"

        while True:
            todo = [a for a in assignments if not done[a.ecu_id] and a.ecu_id not in hopeless]
            if not todo:
                return done
            res = self._run_assigned(todo, one)
            for a in todo:
                done[a.ecu_id] = res.get(a.ecu_id) == "old"
                if res.get(a.ecu_id) == "hopeless":
                    hopeless.add(a.ecu_id)
            if all(done.values()) or time.monotonic() >= deadline:
                return done
            time.sleep(0.3)

    def _run_assigned(
        self, assignments: list[EcuAssignment], fn: Callable[[Line, EcuAssignment], T]
    ) -> dict[str, T]:
        """Like ``_each`` but per assignment; ECUs whose call failed are left out."""
        by_id = {a.ecu_id: a for a in assignments}
        res = self._each(by_id, lambda ln: fn(ln, by_id[ln.cfg.ecu_id]))
        out: dict[str, T] = {}
        for i, r in res.items():
            if isinstance(r, BaseException):
                self._log("ecu_error", {"ecu_id": i, "error": getattr(r, "code", repr(r))})
                continue
            out[i] = r
        return out
