"""Fleet orchestration: the vehicle's ECUs, one ``EcuClient`` per line, driven in parallel.

All-or-nothing: ``transfer`` brings every ECU to a verified inactive slot (skipping ECUs whose
signed report already shows the image verified, activated or running: nothing is flashed twice;
interrupted transfers resume at the device-reported durable offset). Only then does the campaign
pass the point of no return (first ACTIVATE). ``activate``/``reboot``/``settle``/``confirm``/
``revert`` act on the state each ECU *reports* (signed, fresh nonce), so every step is safe to
repeat after a host crash.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from otalink.host.config import EcuConfig
from otalink.host.ecu import (
    EcuClient,
    EcuError,
    EcuInfo,
    EcuLinkError,
    EcuProtocolError,
    EcuRejected,
)
from otalink.host.update.types import EcuAssignment
from otalink.protocol import codes

T = TypeVar("T")

# What an ECU's report says about one assignment (classify()).
CONFIRMED = "confirmed"  # running the new image, confirmed
TRIAL = "trial"  # running the new image on trial
PENDING = "pending"  # new image activated, waiting for the reboot
VERIFIED = "verified"  # new image verified in the inactive slot
REJECTED = "rejected"  # new image rolled back (self-test failed, reverted)
RECEIVING = "receiving"  # new image partly received (resumable)
ABSENT = "absent"  # not there at all
REVERT_REFUSED = "revert_refused:"  # revert(): prefix of the device's refusal code

POST_BOOT = frozenset({CONFIRMED, TRIAL, REJECTED})


class StopRequested(Exception):
    """Raised inside a transfer when the campaign must stop (precondition, cancel)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FleetError(Exception):
    """One ECU failed an operation; ``code`` is stable (``ecu_rejected.e_sig_invalid``, ...)."""

    def __init__(self, ecu_id: str, code: str, message: str) -> None:
        super().__init__(f"{ecu_id}: {message}")
        self.ecu_id = ecu_id
        self.code = code


def classify(info: EcuInfo, a: EcuAssignment) -> str:
    """Where ``a``'s image stands on the ECU that sent ``info``."""
    want = a.sha256_bytes
    active = info.active
    if active.sha256 == want and active.version == a.version:
        if active.state == codes.SLOT_CONFIRMED:
            return CONFIRMED
        if active.state == codes.SLOT_TRIAL:
            return TRIAL
        if active.state == codes.SLOT_PENDING:
            return PENDING
    for slot in info.slots:
        if slot.sha256 != want:
            continue
        if slot.state == codes.SLOT_PENDING:
            return PENDING
        if slot.state == codes.SLOT_VERIFIED:
            return VERIFIED
        if slot.state == codes.SLOT_REJECTED:
            return REJECTED
        if slot.state == codes.SLOT_RECEIVING:
            return RECEIVING
    return ABSENT


def runs_old(info: EcuInfo, a: EcuAssignment) -> bool:
    """The ECU runs a confirmed image that is not ``a``'s (rolled back / never changed)."""
    act = info.active
    return act.state == codes.SLOT_CONFIRMED and act.sha256 != a.sha256_bytes


HEALTH_WINDOW = 3  # link is "ok" unless each of the last N requests failed (or none yet)


@dataclass
class LineHealth:
    """Link health of one ECU line (for ``Agent.ecus()``).

    ``ok`` reflects a short history, not only the last request: it is True once a request
    succeeded and turns False only when each of the last ``HEALTH_WINDOW`` requests failed, so
    one timeout under load does not flag the line. ``errors`` counts every failure.
    """

    last_seen: float | None = None
    last_error: str | None = None
    errors: int = 0
    recent: deque[bool] = field(default_factory=lambda: deque(maxlen=HEALTH_WINDOW))

    @property
    def ok(self) -> bool:
        return any(self.recent)

    def record(self, success: bool, error: str | None = None) -> None:
        """Note the outcome of one request."""
        self.recent.append(success)
        if success:
            self.last_seen = time.time()
            self.last_error = None
        else:
            self.errors += 1
            self.last_error = error


ClientFactory = Callable[[EcuConfig], EcuClient]

HELLO_FIRST_S = 0.5  # first reply wait of a post-reboot HELLO poll (doubles per silent try)
HELLO_GAP_S = 0.1  # pause between HELLO polls


def default_client(cfg: EcuConfig, timeout: float = codes.T_REPLY_MS / 1000) -> EcuClient:
    """An EcuClient on the ECU's serial URL that checks reports with its registered key."""
    return EcuClient(
        cfg.port,
        baud=cfg.baud,
        timeout=timeout,
        verify_key=cfg.public_key,
        recover_timeout=20.0,
    )


class Line:
    """One ECU line: a lazily (re)opened client used by one thread at a time."""

    def __init__(self, cfg: EcuConfig, factory: ClientFactory) -> None:
        self.cfg = cfg
        self._factory = factory
        self._client: EcuClient | None = None
        self.lock = threading.Lock()
        self.health = LineHealth()
        self.last_report: EcuInfo | None = None
        self.last_report_ts: float | None = None

    def client(self) -> EcuClient:
        if self._client is None:
            self._client = self._factory(self.cfg)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            finally:
                self._client = None

    def report(self, fresh_session: bool = False, timeout: float | None = None) -> EcuInfo:
        """A signed report for a fresh nonce (HELLO on a new session, else STATUS_REQ).

        ``timeout`` (if given) caps the client's per-try reply wait for this one request."""
        nonce = os.urandom(16)
        cl = self.client()
        saved = cl.timeout
        if timeout is not None:
            cl.timeout = min(saved, timeout)
        try:
            if fresh_session or cl.info is None:
                info = cl.hello(nonce)
            else:
                try:
                    info = cl.status(nonce)
                except (EcuLinkError, EcuProtocolError):
                    nonce = os.urandom(16)
                    info = cl.hello(nonce)
        except EcuError as exc:
            self.health.record(False, exc.code)
            raise
        finally:
            cl.timeout = saved
        if info.ecu_id != self.cfg.ecu_id or info.hw_id != self.cfg.hardware_id:
            raise FleetError(self.cfg.ecu_id, "ecu_identity", f"line answers as {info.ecu_id}")
        info.verify(self.cfg.public_key)  # EcuClient does too; the campaign relies on it
        self.health.record(True)
        self.last_report = info
        self.last_report_ts = time.time()
        return info

    def hello_until(self, deadline: float) -> EcuInfo:
        """A fresh-session report, polled with short HELLO tries until ``deadline`` (monotonic).

        A HELLO sent while the ECU reboots is lost; rather than one full ECU timeout (times
        the client's tries), try with a short reply wait that doubles after each silent attempt
        (up to the client's own timeout), never waiting past ``deadline``. Raises the last
        EcuLinkError when the deadline passes."""
        wait = HELLO_FIRST_S
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise EcuLinkError(f"{self.cfg.ecu_id}: no HELLO answer before the deadline")
            # the client makes up to 3 tries per request: keep all of them inside the deadline
            try:
                return self.report(fresh_session=True, timeout=max(0.05, min(wait, left / 3)))
            except EcuLinkError:
                if time.monotonic() >= deadline:
                    raise
                wait = min(wait * 2, self.client().timeout)
                time.sleep(min(HELLO_GAP_S, max(0.0, deadline - time.monotonic())))


class Fleet:
    """The vehicle's ECU lines; every public method acts on all given ECUs in parallel."""

    def __init__(
        self,
        ecus: Iterable[EcuConfig],
        factory: ClientFactory | None = None,
        on_progress: Callable[[str, dict[str, Any]], None] | None = None,
        log: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.lines: dict[str, Line] = {e.ecu_id: Line(e, factory or default_client) for e in ecus}
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

    def reports(self, ids: Iterable[str] | None = None, fresh: bool = False) -> dict[str, Any]:
        """Signed reports (or the exception) of the given ECUs (default: all)."""
        return self._each(ids or list(self.lines), lambda ln: ln.report(fresh_session=fresh))

    # ---- before the point of no return -------------------------------------------------------
    def transfer(
        self,
        assignments: list[EcuAssignment],
        images: dict[str, Path],
        should_stop: Callable[[], str | None],
    ) -> None:
        """Bring every assigned ECU to a verified inactive slot (parallel, resumable).

        Raises StopRequested when ``should_stop`` returns a reason, FleetError when an ECU
        refuses or its line fails; in both cases the other transfers stop too.
        """
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
            if cls in (VERIFIED, PENDING, TRIAL, CONFIRMED):
                self._on_progress(ecu, {"phase": "verified", "percent": 100.0})
                self._log("ecu_transfer_skipped", {"ecu_id": ecu, "found": cls})
                return cls
            if cls == REJECTED:
                raise FleetError(ecu, "ecu_image_rejected", "the ECU rejected this image before")
            check_stop()
            image = images[ecu].read_bytes()
            self._on_progress(ecu, {"phase": "transferring", "percent": 0.0})
            last = [-1.0]

            def progress(done: int, total: int) -> None:
                pct = 100.0 * done / total if total else 100.0
                now = time.monotonic()
                if last[0] < 0:  # first call: the offset the device granted (resume point)
                    self._log("ecu_transfer_start", {"ecu_id": ecu, "offset": done, "total": total})
                if now - last[0] >= 0.1 or done >= total:
                    last[0] = now
                    self._on_progress(
                        ecu, {"phase": "transferring", "percent": round(pct, 1), "offset": done}
                    )
                check_stop()

            res = line.client().install(
                a.instruction, list(a.instruction_sigs), image, progress=progress
            )
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
            return VERIFIED

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
        raise FleetError(i, "internal", repr(exc)) from exc

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
            if cls == VERIFIED:
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
            if cls == PENDING:
                self._log("ecu_reboot", {"ecu_id": a.ecu_id})
                try:
                    line.client().reboot()
                except EcuLinkError:
                    pass  # the device may reset before its RESULT gets out
                line.client().info = None  # next request opens a new session
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
                cls = res.get(a.ecu_id, "unreachable")
                if cls in POST_BOOT or (cls == ABSENT and self._old(a)):
                    final[a.ecu_id] = cls
                else:
                    nxt.append(a)
            todo = nxt
            if not todo or time.monotonic() >= deadline:
                break
            time.sleep(poll)
        for a in todo:
            final[a.ecu_id] = "unreachable"
        return final

    def _old(self, a: EcuAssignment) -> bool:
        rep = self.lines[a.ecu_id].last_report
        return rep is not None and runs_old(rep, a)

    def confirm(self, assignments: list[EcuAssignment]) -> dict[str, str]:
        """CONFIRM each ECU on trial; returns the classification after it."""

        def one(line: Line, a: EcuAssignment) -> str:
            cls = classify(line.report(), a)
            if cls == TRIAL:
                self._log("ecu_confirm", {"ecu_id": a.ecu_id})
                line.client().confirm()
                cls = classify(line.report(), a)
            if cls == CONFIRMED:
                self._on_progress(a.ecu_id, {"phase": "confirmed", "percent": 100.0})
            return cls

        return self._run_assigned(assignments, one)

    def revert(self, assignments: list[EcuAssignment]) -> dict[str, str]:
        """REVERT each ECU that runs the new image on trial or would boot it (pending).

        An ECU that already rolled back by itself (REJECTED) is left alone; a confirmed one
        cannot be reverted (the caller ends in failed_needs_service). An ECU that refuses the
        REVERT (e.g. ``E_NO_IMAGE``: no confirmed image to go back to) is returned as
        ``REVERT_REFUSED + code`` so the caller does not wait for it to come back."""

        def one(line: Line, a: EcuAssignment) -> str:
            info = line.report()
            cls = classify(info, a)
            if cls in (TRIAL, PENDING):
                self._log("ecu_revert", {"ecu_id": a.ecu_id, "from": cls})
                try:
                    line.client().revert()
                except EcuRejected as exc:
                    self._log("ecu_revert_refused", {"ecu_id": a.ecu_id, "code": exc.code})
                    return REVERT_REFUSED + exc.code
                except EcuLinkError:
                    pass  # may reset while reverting; settle() below finds out
                line.client().info = None
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
            if classify(info, a) not in (TRIAL, PENDING, CONFIRMED) and not any(
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
