# The agent's rare state changes, loaded for the call and dropped again (device/agent.py), so an
# idle agent holds none of this code:
#   healthy(agent, ok)       the application proved itself (or failed to)
#   note_fault(agent, code)  the supervisor records a fault of the running image
#   internal(agent, e)       an unexpected exception while handling a message: E_INTERNAL
# healthy and note_fault come from the application and the supervisor, also while the agent
# rests: they write the state record without waking the engine (a fault after the application
# ran out of heap must still be recorded, without the engine's few KB).
import gc
import sys

from otalink.device import agent as _a

try:
    from micropython import const
except ImportError:  # CPython (tooling only)

    def const(x):
        return x


# protocol/codes.py values (private copies, tests/protocol/test_wire.py checks them)
_E_INTERNAL = const(63)
_INTERNAL_NO_MEMORY = const(1)
_E_SELFTEST = const(50)
_APP_HEALTHY = const(2)
_APP_FAILED = const(3)
_IDLE = const(0)  # agent._IDLE
_RUN_RESET = const(1)  # agent._RUN_RESET
_STORE = const(6)  # agent._STORE


def _op(a, name, *args):
    # one Slots operation: the engine's when awake (a live transfer's Slots), else on a Slots
    # made for it and dropped again
    if a.parser is not None:
        return a._op(name, *args)
    s = _a._lazy("otalink.device.slots").Slots(a.bdev, a.geom, None, None, False)
    try:
        return getattr(s, name)(*args)
    finally:
        s = None
        _a._drop(_STORE)


def healthy(a, ok):
    # Only a healthy application on a trial slot can be confirmed (CONFIRM: E_NOT_HEALTHY until
    # then); not healthy on a trial rolls the trial back now (E_SELFTEST) and resets.
    if not ok:
        a.app_state = _APP_FAILED
        if a.trial:
            _op(a, "trial_failed", _E_SELFTEST)
            a.reset_requested = True
            a.exit = _RUN_RESET
        return
    if a.app_state != _APP_HEALTHY:
        a.app_state = _APP_HEALTHY
        if a.trial:
            _op(a, "trial_passed")  # persisted: "never healthy" decides E_BOOT_CRASH later


def note_fault(a, code):
    a.fault = code
    try:
        _op(a, "note_fault", code)
    except Exception as e:  # flash trouble or no heap left: the watchdog still decides
        sys.print_exception(e)


def internal(a, e):
    sys.print_exception(e)
    gc.collect()
    a.state = _IDLE
    try:
        a._error(_E_INTERNAL, _INTERNAL_NO_MEMORY if isinstance(e, MemoryError) else 0)
    except MemoryError:
        pass  # the host times out and asks again
