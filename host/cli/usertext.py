"""The human text of the user commands: the campaign's view models as the terminal shows them."""

from __future__ import annotations

import sys

from otalink.host.cli.progress import bar
from otalink.host.gateway.campaign.preconditions import Precondition
from otalink.host.gateway.campaign.table import PONR_STATES, State
from otalink.host.gateway.campaign.view import DownloadView, Status

S = State
FAILED = (S.FAILED_ROLLED_BACK, S.FAILED_NEEDS_SERVICE)


def mb(n: float | None) -> str:
    """Bytes as MB, or kB below one megabyte."""
    b = float(n or 0)
    return f"{b / 1e6:.1f} MB" if b >= 1e6 else f"{b / 1e3:.1f} kB"


def dur(s: float | None) -> str:
    """Seconds as ``N s`` or ``M min SS s``."""
    if s is None:
        return "?"
    s = max(0, round(s))
    return f"{s} s" if s < 60 else f"{s // 60} min {s % 60:02d} s"


def _download_line(d: DownloadView) -> str:
    p = 100.0 * d.bytes / d.total if d.total else 0.0
    rate_s = f"  {mb(d.rate)}/s" if d.rate else ""
    eta_s = f"  ETA {dur(d.eta_s)}" if d.eta_s is not None else ""
    return f"download {bar(p)}  {mb(d.bytes)} / {mb(d.total)}{rate_s}{eta_s}"


def _install_lines(st: Status) -> list[str]:
    ins = st.install
    lines = [f"install  {bar(ins.overall_percent or 0.0)}"]
    for ecu_id in sorted(ins.ecus):
        e = ins.ecus[ecu_id]
        lines.append(f"  {ecu_id:<10} {bar(e.percent, 20)}  {e.phase}")
    if ins.point_of_no_return:
        lines.append("  past the point of no return: the install can no longer be stopped")
    return lines


def status_text(st: Status) -> str:
    """Human summary of a status."""
    lines = [f"state: {st.state}" + (f" ({st.reason})" if st.reason else "")]
    if st.update is not None:
        lines.append(f"update: {st.update.title} {st.update.version}".rstrip())
    if st.state in (S.DOWNLOADING, S.DOWNLOAD_PAUSED):
        lines.append(_download_line(st.download))
    installing = st.state in (S.INSTALLING, *PONR_STATES)
    if installing or (st.state in (*FAILED, S.SUCCEEDED) and st.install.ecus):
        lines.extend(_install_lines(st))
    if st.schedule is not None:
        lines.append(f"scheduled: {st.schedule.at}")
    lines.append(f"network: {st.network}" + ("  (cellular allowed)" if st.cellular_allowed else ""))
    return "\n".join(lines)


class Progress:
    """Redraws progress lines in place on a terminal; prints changes otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self._lines = 0
        self._last = ""

    def show(self, text: str) -> None:
        if text == self._last:
            return
        self._last = text
        if self.tty:
            if self._lines:
                sys.stdout.write(f"\x1b[{self._lines}F\x1b[J")
            sys.stdout.write(text + "\n")
            self._lines = text.count("\n") + 1
        else:
            sys.stdout.write(text + "\n")
        sys.stdout.flush()


def fields(doc: dict[str, object]) -> str:
    """``k=v`` for the plain values of a JSON object."""
    return " ".join(f"{k}={v}" for k, v in doc.items() if isinstance(v, str | int | float))


def preconditions_text(items: list[Precondition]) -> str:
    lines = []
    for p in items:
        mark = "ok " if p.ok else "NOT"
        line = f"[{mark}] {p.id}: {p.value!s} (needs {p.required})"
        if not p.ok and p.hint:
            line += f" -> {p.hint}"
        lines.append(line)
    return "\n".join(lines) if lines else "(no preconditions reported)"
