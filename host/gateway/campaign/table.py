"""The campaign's tables: the data that drives it (no I/O, no threads).

* ``TABLE``: (state, event) -> next state + typed actions. Anything not listed is refused.
* ``STEPS``: the installer's step in each install state.
* ``COMMANDS``: what each driver command does in each state (the event it fires, the reason it
  leaves, what it clears, the history note); ``REFUSALS``: the states where a command is refused
  with a code of its own instead of ``campaign.illegal_in_state``.

Every command row names an event the transition table accepts in that state (checked when this
module is imported), so the command facade never re-derives legality: it looks it up here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class State(StrEnum):
    """Campaign states (persisted by value)."""

    IDLE = "idle"
    AVAILABLE = "available"
    DOWNLOADING = "downloading"
    DOWNLOAD_PAUSED = "download_paused"
    DOWNLOADED = "downloaded"
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    SCHEDULED = "scheduled"
    INSTALLING = "installing"  # transferring + verifying on the ECUs, before the PONR
    INSTALLING_COMMITTED = "installing_committed"  # activating: after the point of no return
    RESTARTING = "restarting"
    VERIFYING = "verifying"
    SUCCEEDED = "succeeded"
    FAILED_ROLLED_BACK = "failed_rolled_back"
    FAILED_NEEDS_SERVICE = "failed_needs_service"


class Ev(StrEnum):
    """Inputs of the machine."""

    CHECK_FOUND = "check_found"
    CHECK_NONE = "check_none"
    DOWNLOAD_START = "download_start"
    DOWNLOAD_PAUSE = "download_pause"
    DOWNLOAD_RESUME = "download_resume"
    CONNECTION_LOST = "connection_lost"
    METERED_BLOCKED = "metered_blocked"
    CONNECTION_BACK = "connection_back"
    DOWNLOAD_DONE = "download_done"
    DOWNLOAD_DONE_SCHEDULED = "download_done_scheduled"
    DOWNLOAD_FAILED = "download_failed"
    DOWNLOAD_CANCEL = "download_cancel"
    REQUEST_INSTALL = "request_install"
    DECLINE = "decline"
    CONFIRM_INSTALL = "confirm_install"
    SCHEDULE = "schedule"
    UNSCHEDULE = "unschedule"
    SCHEDULE_DUE = "schedule_due"
    SCHEDULE_MISSED = "schedule_missed"
    SCHEDULE_GAVE_UP = "schedule_gave_up"
    PRECONDITION_BROKEN = "precondition_broken"
    INSTALL_FAILED = "install_failed"
    CANCEL = "cancel"
    POINT_OF_NO_RETURN = "point_of_no_return"
    REBOOT_SENT = "reboot_sent"
    ECUS_BACK = "ecus_back"
    VERIFY_OK = "verify_ok"
    ROLLED_BACK = "rolled_back"
    NEEDS_SERVICE = "needs_service"
    ACKNOWLEDGE = "acknowledge"


class Action(StrEnum):
    """What runs after a transition is persisted (``agent.HANDLERS`` maps each to its hook)."""

    ANNOUNCE = "announce"  # event update_available
    WAKE_DOWNLOADER = "wake_downloader"
    STOP_DOWNLOADER = "stop_downloader"
    DISCARD_DOWNLOAD = "discard_download"  # delete the partial / complete download
    PROMPT_CONFIRM = "prompt_confirm"  # event confirmation_required with the checklist
    WAKE_TICKER = "wake_ticker"  # scheduler, report outbox
    WAKE_INSTALLER = "wake_installer"
    ABORT_ECUS = "abort_ecus"  # the installer stops the transfers (ABORT on a driver's cancel)
    REPORT = "report"  # sign and queue the vehicle version manifest


@dataclass(frozen=True)
class Transition:
    """One row of the table: the next state and the actions run after persisting it."""

    next: State
    actions: tuple[Action, ...] = ()


S = State
A = Action


def _to(nxt: State, *actions: Action) -> Transition:
    return Transition(nxt, actions)


_DISCARD = (A.STOP_DOWNLOADER, A.DISCARD_DOWNLOAD)

# THE table.  Anything not listed is refused (Conflict) and changes nothing.
TABLE: Final[dict[tuple[State, Ev], Transition]] = {
    # -- discovery
    (S.IDLE, Ev.CHECK_FOUND): _to(S.AVAILABLE, A.ANNOUNCE),
    (S.IDLE, Ev.CHECK_NONE): _to(S.IDLE),
    (S.AVAILABLE, Ev.CHECK_FOUND): _to(S.AVAILABLE, A.ANNOUNCE),
    (S.AVAILABLE, Ev.CHECK_NONE): _to(S.IDLE, *_DISCARD),
    (S.SUCCEEDED, Ev.CHECK_FOUND): _to(S.AVAILABLE, A.ANNOUNCE),
    (S.FAILED_ROLLED_BACK, Ev.CHECK_FOUND): _to(S.AVAILABLE, A.ANNOUNCE),
    (S.SUCCEEDED, Ev.CHECK_NONE): _to(S.SUCCEEDED),
    (S.FAILED_ROLLED_BACK, Ev.CHECK_NONE): _to(S.FAILED_ROLLED_BACK),
    # -- download
    (S.AVAILABLE, Ev.DOWNLOAD_START): _to(S.DOWNLOADING, A.WAKE_DOWNLOADER),
    (S.DOWNLOADING, Ev.DOWNLOAD_PAUSE): _to(S.DOWNLOAD_PAUSED, A.STOP_DOWNLOADER),
    (S.DOWNLOAD_PAUSED, Ev.DOWNLOAD_RESUME): _to(S.DOWNLOADING, A.WAKE_DOWNLOADER),
    (S.DOWNLOAD_PAUSED, Ev.DOWNLOAD_START): _to(S.DOWNLOADING, A.WAKE_DOWNLOADER),
    (S.DOWNLOADING, Ev.CONNECTION_LOST): _to(S.DOWNLOAD_PAUSED),
    (S.DOWNLOADING, Ev.METERED_BLOCKED): _to(S.DOWNLOAD_PAUSED),
    (S.DOWNLOAD_PAUSED, Ev.CONNECTION_LOST): _to(S.DOWNLOAD_PAUSED),
    (S.DOWNLOAD_PAUSED, Ev.METERED_BLOCKED): _to(S.DOWNLOAD_PAUSED),
    (S.DOWNLOAD_PAUSED, Ev.CONNECTION_BACK): _to(S.DOWNLOADING, A.WAKE_DOWNLOADER),
    (S.DOWNLOADING, Ev.DOWNLOAD_DONE): _to(S.AWAITING_CONFIRMATION, A.PROMPT_CONFIRM),
    (S.DOWNLOADING, Ev.DOWNLOAD_DONE_SCHEDULED): _to(S.SCHEDULED, A.WAKE_TICKER),
    (S.DOWNLOADING, Ev.DOWNLOAD_FAILED): _to(S.AVAILABLE, *_DISCARD),
    (S.DOWNLOADING, Ev.DOWNLOAD_CANCEL): _to(S.AVAILABLE, *_DISCARD),
    (S.DOWNLOAD_PAUSED, Ev.DOWNLOAD_CANCEL): _to(S.AVAILABLE, *_DISCARD),
    (S.DOWNLOADED, Ev.DOWNLOAD_CANCEL): _to(S.AVAILABLE, *_DISCARD),
    (S.AWAITING_CONFIRMATION, Ev.DOWNLOAD_CANCEL): _to(S.AVAILABLE, *_DISCARD),
    (S.SCHEDULED, Ev.DOWNLOAD_CANCEL): _to(S.AVAILABLE, *_DISCARD),
    # -- confirmation
    (S.DOWNLOADED, Ev.REQUEST_INSTALL): _to(S.AWAITING_CONFIRMATION, A.PROMPT_CONFIRM),
    (S.AWAITING_CONFIRMATION, Ev.REQUEST_INSTALL): _to(S.AWAITING_CONFIRMATION),
    (S.AWAITING_CONFIRMATION, Ev.DECLINE): _to(S.DOWNLOADED),
    (S.DOWNLOADED, Ev.CONFIRM_INSTALL): _to(S.INSTALLING, A.WAKE_INSTALLER),
    (S.AWAITING_CONFIRMATION, Ev.CONFIRM_INSTALL): _to(S.INSTALLING, A.WAKE_INSTALLER),
    (S.SCHEDULED, Ev.CONFIRM_INSTALL): _to(S.INSTALLING, A.WAKE_INSTALLER),
    # -- scheduling (before the download completes the schedule rides along with the state)
    (S.AVAILABLE, Ev.SCHEDULE): _to(S.DOWNLOADING, A.WAKE_DOWNLOADER),
    (S.DOWNLOADING, Ev.SCHEDULE): _to(S.DOWNLOADING, A.WAKE_TICKER),
    (S.DOWNLOAD_PAUSED, Ev.SCHEDULE): _to(S.DOWNLOAD_PAUSED, A.WAKE_TICKER),
    (S.DOWNLOADED, Ev.SCHEDULE): _to(S.SCHEDULED, A.WAKE_TICKER),
    (S.AWAITING_CONFIRMATION, Ev.SCHEDULE): _to(S.SCHEDULED, A.WAKE_TICKER),
    (S.SCHEDULED, Ev.SCHEDULE): _to(S.SCHEDULED, A.WAKE_TICKER),
    (S.DOWNLOADING, Ev.UNSCHEDULE): _to(S.DOWNLOADING),
    (S.DOWNLOAD_PAUSED, Ev.UNSCHEDULE): _to(S.DOWNLOAD_PAUSED),
    (S.SCHEDULED, Ev.UNSCHEDULE): _to(S.DOWNLOADED),
    (S.SCHEDULED, Ev.SCHEDULE_DUE): _to(S.INSTALLING, A.WAKE_INSTALLER),
    (S.SCHEDULED, Ev.SCHEDULE_MISSED): _to(S.SCHEDULED, A.WAKE_TICKER),
    (S.DOWNLOADING, Ev.SCHEDULE_MISSED): _to(S.DOWNLOADING, A.WAKE_TICKER),
    (S.DOWNLOAD_PAUSED, Ev.SCHEDULE_MISSED): _to(S.DOWNLOAD_PAUSED, A.WAKE_TICKER),
    (S.SCHEDULED, Ev.SCHEDULE_GAVE_UP): _to(S.DOWNLOADED),
    (S.DOWNLOADING, Ev.SCHEDULE_GAVE_UP): _to(S.DOWNLOADING),
    (S.DOWNLOAD_PAUSED, Ev.SCHEDULE_GAVE_UP): _to(S.DOWNLOAD_PAUSED),
    # -- install, before the point of no return: any stop goes back to downloaded
    (S.INSTALLING, Ev.PRECONDITION_BROKEN): _to(S.DOWNLOADED, A.ABORT_ECUS),
    (S.INSTALLING, Ev.INSTALL_FAILED): _to(S.DOWNLOADED, A.ABORT_ECUS),
    (S.INSTALLING, Ev.CANCEL): _to(S.DOWNLOADED, A.ABORT_ECUS),
    (S.INSTALLING, Ev.POINT_OF_NO_RETURN): _to(S.INSTALLING_COMMITTED, A.WAKE_INSTALLER),
    # -- after it
    (S.INSTALLING_COMMITTED, Ev.REBOOT_SENT): _to(S.RESTARTING, A.WAKE_INSTALLER),
    (S.INSTALLING_COMMITTED, Ev.ROLLED_BACK): _to(S.FAILED_ROLLED_BACK, A.REPORT, A.WAKE_TICKER),
    (S.INSTALLING_COMMITTED, Ev.NEEDS_SERVICE): _to(
        S.FAILED_NEEDS_SERVICE, A.REPORT, A.WAKE_TICKER
    ),
    (S.RESTARTING, Ev.ECUS_BACK): _to(S.VERIFYING, A.WAKE_INSTALLER),
    (S.RESTARTING, Ev.NEEDS_SERVICE): _to(S.FAILED_NEEDS_SERVICE, A.REPORT, A.WAKE_TICKER),
    (S.VERIFYING, Ev.VERIFY_OK): _to(S.SUCCEEDED, A.REPORT, A.WAKE_TICKER),
    (S.VERIFYING, Ev.ROLLED_BACK): _to(S.FAILED_ROLLED_BACK, A.REPORT, A.WAKE_TICKER),
    (S.VERIFYING, Ev.NEEDS_SERVICE): _to(S.FAILED_NEEDS_SERVICE, A.REPORT, A.WAKE_TICKER),
    # -- done
    (S.SUCCEEDED, Ev.ACKNOWLEDGE): _to(S.IDLE),
    (S.FAILED_ROLLED_BACK, Ev.ACKNOWLEDGE): _to(S.IDLE),
    (S.FAILED_NEEDS_SERVICE, Ev.ACKNOWLEDGE): _to(S.IDLE),
}

PONR_STATES: Final = frozenset({S.INSTALLING_COMMITTED, S.RESTARTING, S.VERIFYING})
INSTALL_STATES: Final = frozenset({S.INSTALLING}) | PONR_STATES
TERMINAL: Final = frozenset({S.SUCCEEDED, S.FAILED_ROLLED_BACK, S.FAILED_NEEDS_SERVICE})
# download_paused reasons the ticker leaves by itself once the link allows it again
AUTO_RESUME: Final = frozenset(
    {"no_connection", "unstable", "cellular_not_allowed", "server_unreachable"}
)
# Mender's loop guard, per state: the installer's step in one state may start at most this
# many times (a failing step, or a host that keeps dying in it); then the campaign ends.
LOOP_MAX: Final = 28


def legal_events(state: State) -> list[Ev]:
    """Events the table accepts in ``state``."""
    return [ev for (st, ev) in TABLE if st == state]


# States where an update check may run (a check in any other state is answered "not now").
CHECK_STATES: Final = frozenset(st for (st, ev) in TABLE if ev == Ev.CHECK_FOUND)


# ---- the installer's step per state ----------------------------------------------------------


class Step(StrEnum):
    """What the installer does in an install state (each safe to redo after a crash)."""

    TRANSFER = "transfer"  # every ECU to a verified inactive slot, then the PONR
    ACTIVATE = "activate"  # ACTIVATE + REBOOT where the reports say so
    RESTART = "restart"  # wait until every ECU answers again
    VERIFY = "verify"  # CONFIRM every ECU on trial, or roll back


STEPS: Final[dict[State, Step]] = {
    S.INSTALLING: Step.TRANSFER,
    S.INSTALLING_COMMITTED: Step.ACTIVATE,
    S.RESTARTING: Step.RESTART,
    S.VERIFYING: Step.VERIFY,
}
# a step that keeps failing here ends the campaign with this event (before / after the PONR)
GIVE_UP: Final[dict[State, Ev]] = {
    S.INSTALLING: Ev.INSTALL_FAILED,
    S.INSTALLING_COMMITTED: Ev.NEEDS_SERVICE,
    S.RESTARTING: Ev.NEEDS_SERVICE,
    S.VERIFYING: Ev.NEEDS_SERVICE,
}


# ---- the driver's commands per state ---------------------------------------------------------


class Command(StrEnum):
    """Commands of the driver (the local API, the screen, the CLI)."""

    DOWNLOAD = "download_start"
    PAUSE = "download_pause"
    RESUME = "download_resume"
    DROP_DOWNLOAD = "download_cancel"
    REQUEST_INSTALL = "request_install"  # install without the confirmation: ask for it
    INSTALL = "install"  # confirmed
    SCHEDULE = "schedule"
    UNSCHEDULE = "unschedule"
    CANCEL = "cancel"
    ACKNOWLEDGE = "acknowledge"


class Clears(StrEnum):
    """Record fields a command resets in the same atomic write as its transition."""

    SCHEDULE = "schedule"
    IMAGES = "images"
    INSTALL = "install"


@dataclass(frozen=True)
class Order:
    """What a command does in one state.

    ``ev`` None: the command's effect is already there (answered without a change). ``reason``
    is the new reason unless ``keep_reason`` (a paused download keeps why it is paused, so the
    ticker still resumes it by itself). ``note``: the transition goes into the history (with
    ``by`` who asked, if set).
    """

    ev: Ev | None
    reason: str | None = None
    keep_reason: bool = False
    clears: frozenset[Clears] = frozenset()
    note: bool = False
    by: str | None = None


ALREADY: Final = Order(None)
_DROP_DL = frozenset({Clears.SCHEDULE, Clears.IMAGES})
_NO_SCHED = frozenset({Clears.SCHEDULE})
_READY = (S.DOWNLOADED, S.AWAITING_CONFIRMATION, S.SCHEDULED)
_LOADING = (S.DOWNLOADING, S.DOWNLOAD_PAUSED)


def _each(states: tuple[State, ...], order: Order) -> dict[State, Order]:
    return dict.fromkeys(states, order)


COMMANDS: Final[dict[Command, dict[State, Order]]] = {
    Command.DOWNLOAD: {
        **_each((S.AVAILABLE, S.DOWNLOAD_PAUSED), Order(Ev.DOWNLOAD_START, note=True)),
        S.DOWNLOADING: ALREADY,
    },
    Command.PAUSE: {S.DOWNLOADING: Order(Ev.DOWNLOAD_PAUSE, "user"), S.DOWNLOAD_PAUSED: ALREADY},
    Command.RESUME: {S.DOWNLOAD_PAUSED: Order(Ev.DOWNLOAD_RESUME), S.DOWNLOADING: ALREADY},
    Command.DROP_DOWNLOAD: _each(
        (*_LOADING, *_READY), Order(Ev.DOWNLOAD_CANCEL, "cancelled", clears=_DROP_DL, note=True)
    ),
    Command.REQUEST_INSTALL: {
        S.DOWNLOADED: Order(Ev.REQUEST_INSTALL, "confirmation_required"),
        S.AWAITING_CONFIRMATION: ALREADY,
        S.SCHEDULED: ALREADY,
    },
    Command.INSTALL: _each(
        _READY, Order(Ev.CONFIRM_INSTALL, clears=_NO_SCHED, note=True, by="driver")
    ),
    Command.SCHEDULE: {
        **_each((S.AVAILABLE, *_READY), Order(Ev.SCHEDULE, note=True)),
        **_each(_LOADING, Order(Ev.SCHEDULE, keep_reason=True, note=True)),
    },
    Command.UNSCHEDULE: {
        **_each(_LOADING, Order(Ev.UNSCHEDULE, keep_reason=True, clears=_NO_SCHED, note=True)),
        S.SCHEDULED: Order(Ev.UNSCHEDULE, "unscheduled", clears=_NO_SCHED, note=True),
    },
    Command.CANCEL: {
        S.INSTALLING: Order(Ev.CANCEL, "cancelled", note=True, by="driver"),
        S.SCHEDULED: Order(Ev.UNSCHEDULE, "unscheduled", clears=_NO_SCHED, note=True),
        S.AWAITING_CONFIRMATION: Order(Ev.DECLINE, "declined", note=True),
        **_each(_LOADING, Order(Ev.DOWNLOAD_CANCEL, "cancelled", clears=_DROP_DL, note=True)),
    },
    Command.ACKNOWLEDGE: _each(
        tuple(TERMINAL), Order(Ev.ACKNOWLEDGE, clears=frozenset({Clears.INSTALL}))
    ),
}


class Refusal(StrEnum):
    """Refusals with a code of their own (anything else illegal: ``campaign.illegal_in_state``)."""

    NOT_DOWNLOADED = "campaign.not_downloaded"
    POINT_OF_NO_RETURN = "campaign.point_of_no_return"


_NOT_YET = dict.fromkeys((S.AVAILABLE, *_LOADING), Refusal.NOT_DOWNLOADED)
REFUSALS: Final[dict[Command, dict[State, Refusal]]] = {
    Command.INSTALL: _NOT_YET,
    Command.REQUEST_INSTALL: _NOT_YET,
    Command.CANCEL: dict.fromkeys(PONR_STATES, Refusal.POINT_OF_NO_RETURN),
}


def _check_tables() -> None:
    """Every command row fires an event the transition table accepts in that state, every
    install state has a step and a way to give up; fails at import otherwise."""
    for cmd, rows in COMMANDS.items():
        for st, order in rows.items():
            if order.ev is not None and (st, order.ev) not in TABLE:
                raise TypeError(f"COMMANDS[{cmd}][{st}] fires {order.ev}: not in TABLE")
            if st in REFUSALS.get(cmd, {}):
                raise TypeError(f"COMMANDS[{cmd}][{st}] is also a refusal")
    if set(STEPS) != INSTALL_STATES:
        raise TypeError("STEPS must name a step for every install state")
    for st, ev in GIVE_UP.items():
        if (st, ev) not in TABLE:
            raise TypeError(f"GIVE_UP[{st}] = {ev}: not in TABLE")


_check_tables()
