# Signed commands on the device, once authenticated (docs/protocol.md 5.1, docs/device.md
# "Signed commands"):
#
#   check(agent, p) -> generator | None   the checks (protocol/command.py: key, then the
#                               sliced ed25519 verification, then layout / target / nonce), then
#                               run(); None: not a signed command's shape (the full parser
#                               answers it: E_CMD_AUTH for the unsigned [type] of version 1)
#   run(agent, t) -> generator   spend the command nonce, then run command t and answer RESULT
#
# The agent loads this module for a command and drops it again: none of it sits in the idle
# heap; ed25519 and protocol/command.py are loaded for the checks and dropped before the command
# runs. A generator because ACTIVATE (and a REBOOT
# that no ACTIVATE preceded) first asks the application to bring its outputs to a safe state:
# it yields (awaitable, safe_ms) and the agent's line task awaits it with that bound (the
# application contract, docs/device.md "Writing an ECU application").
import os

try:
    from micropython import const
except ImportError:  # CPython (tooling only)

    def const(x):
        return x


# protocol/codes.py values (private copies, tests/protocol/test_wire.py checks them)
_E_BAD_STATE = const(12)
_E_NOT_HEALTHY = const(58)
_E_NOT_SAFE = const(59)
_E_NO_IMAGE = const(42)
_MSG_ABORT = const(0xE)
_MSG_ACTIVATE = const(0xA)
_MSG_CONFIRM = const(0xC)
_MSG_REBOOT = const(0xB)
_OK = const(0)
_NONCE_LEN = const(16)
_SLOT_VERIFIED = const(2)
_APP_HEALTHY = const(2)
_BOOT_NORMAL = const(0)
_RECEIVING = const(1)  # agent._RECEIVING
_IDLE = const(0)  # agent._IDLE
_TIMEOUT = const(-1)  # agent._TIMEOUT


_E_CMD_AUTH = const(70)
_CRYPTO = const(1)  # agent._CRYPTO
_CMD = const(2)  # agent._CMD


def check(a, p):
    from otalink.device import agent as _a

    try:
        k = _a._lazy("otalink.protocol.command").key(a.cfg.command_keys, p)
    finally:
        _a._drop(_CMD)
    if k is None:
        return None
    return _checked(a, p, k)


def _checked(a, p, k):
    from otalink.device import agent as _a

    ed = _a._lazy("otalink.device.ed25519v")
    ok = yield from ed.verify_g(k[0], k[1], k[2])
    ed = None
    _a._drop(_CRYPTO)
    if not ok:
        # refused: nothing changes, not even the nonce
        from otalink.protocol.errors import ProtocolError

        raise ProtocolError(_E_CMD_AUTH, 2)
    try:
        _a._lazy("otalink.protocol.command").after(p, k[1], a.cfg.ecu_id, a.cmd_nonce)
    finally:
        _a._drop(_CMD)
    yield from run(a, p[1])


def _safe(a):
    # -> True when the application has its outputs safe (or has no on_activate), in slices
    h = a.on_activate
    if h is None:
        return True
    try:
        r = h()
    except Exception as e:
        import sys

        sys.print_exception(e)
        return False
    if hasattr(r, "send"):  # a coroutine: awaited by the agent within safe_ms
        r = yield (r, a.safe_ms)
    return r is not False and r != _TIMEOUT


def run(a, t):
    # Accepted: the nonce is spent before the command runs, whatever the command answers, so the
    # same signed bytes are refused from now on (E_CMD_REPLAY).
    a.cmd_nonce = os.urandom(_NONCE_LEN)
    if t == _MSG_ABORT:
        a.state = _IDLE
        a.instr = None
        code = a._code("abort")
        a._unload()
        a._result(t, code)
    elif t == _MSG_REBOOT:
        if not a.activated and not (yield from _safe(a)):
            a._result(t, _E_NOT_SAFE)
            return
        if a.state == _RECEIVING:
            a.state = _IDLE  # the durable offset survives the reset
        a._result(t, _OK)
        a._reset()
    elif a.state == _RECEIVING:
        a._result(t, _E_BAD_STATE, t)  # authentic, but not while receiving
    elif t == _MSG_ACTIVATE:
        s = a._slots()
        ready = s.slot[1 - s.active][0] == _SLOT_VERIFIED
        a._done(s)
        s = None
        if ready and not (yield from _safe(a)):
            a._result(t, _E_NOT_SAFE)  # refused, not forced: nothing activated
            return
        code = a._code("activate")
        if code == _OK:
            a.activated = True
        a._result(t, code)
    elif t == _MSG_CONFIRM:
        if a.trial and a.fmt == 2 and a.app_state != _APP_HEALTHY:
            # only a healthy application on a trial slot can be confirmed (fmt-1 bundles: their
            # self-test, E_SELFTEST from the storage as before)
            a._result(t, _E_NOT_HEALTHY)
            return
        code = a._code("confirm")
        if code == _OK:
            a.trial = False
            a.boot_state = _BOOT_NORMAL
            a.fault = 0
        a._result(t, code)
    else:
        a._result(t, a._code("revert"))
    yield  # (a generator in every branch)
