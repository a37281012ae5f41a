# The agent's engine (docs/device.md "Agent"; docs/adr/0007-ecu-component.md "Rest"): what an
# awake agent needs to serve the line, loaded when the line wakes it (or a call needs it) and
# dropped again when it rests, so an idle agent holds none of this code and no frame reader:
#
#   rest(agent) -> bool   back to rest when nothing is in flight: no request in slices, no
#                 transfer loaded, no frame still arriving (a partial frame whose line has
#                 been silent for 500 ms is dropped), no application request waiting
#   (waking, and what rest undoes, are wake.py's: loaded for the call, so an awake agent, a
#   transfer above all, holds only the methods below)
#
# Methods (the interface every request module calls, unchanged by where they live; wake.py
# installs them on the Agent class):
#   ._next() ._handle(p) ._trace(p)                         the line task's steps (aloop, drive)
#   ._small ._error ._result ._send_view ._internal          replies
#   ._slots() ._done(s) ._op(name, ...) ._code(name, ...)   storage, per request
#   ._unload() ._reset()                                    the transfer machinery goes; a reset
# Installing functions on the class (instead of a mixin) keeps the call sites and their cost: a
# method call through the class allocates nothing, so the DATA hot path stays allocation-free.
import sys
import time

from otalink.device import agent as _a
from otalink.protocol.errors import ProtocolError
from otalink.protocol.hotpath import put_head

try:
    from micropython import const
except ImportError:  # CPython (tooling only)

    def const(x):
        return x


# protocol/codes.py values this module uses, as private consts (tests/protocol/test_wire.py)
_E_INTERNAL = const(63)
_INTERNAL_NO_MEMORY = const(1)
_MSG_ERROR = const(0xF)
_MSG_RESULT = const(0x9)
_T_REPLY_MS = const(2000)
_MAX_READS = const(64)  # reads per frame search: a line that never goes quiet still yields
_NONCE_LEN = const(16)

_COLD = const(3)  # agent._COLD
_SERVE = const(4)  # agent._SERVE
_SMALL = const(5)  # agent._SMALL
_STORE = const(6)  # agent._STORE
_IDLE = const(0)  # agent._IDLE
_WAKE = const(("otalink.device", ("wake",)))
_RUN_RESET = const(1)  # agent._RUN_RESET


# ---- storage, per request -----------------------------------------------------------------
def _slots(a):
    # the live transfer's Slots, or one made for this request from the flash (dropped again
    # with its modules by _done): an idle agent holds no storage code or state
    x = a.xfer
    if x is not None and not x.dry:
        return x.slots
    return _a._lazy("otalink.device.slots").Slots(a.bdev, a.geom, None, None, False)


def _done(a, s):
    x = a.xfer
    if x is None or s is not x.slots:
        _a._drop(_STORE)


def _op(a, name, *args):
    # one Slots operation (the operation's module is loaded for it and dropped again)
    s = a._slots()
    try:
        return getattr(s, name)(*args)
    finally:
        a._done(s)


def _code(a, name, *args):
    try:
        return a._op(name, *args)
    except ProtocolError as e:
        return e.code


def _unload(a):
    # the transfer machinery goes (session.py)
    if a.xfer is not None:
        a.xfer.unload()


def _reset(a):
    a.reset_requested = True
    a.exit = _RUN_RESET


# ---- output -----------------------------------------------------------------------------------
def _send_view(a, view):
    try:
        a.link.write(view, len(view), _T_REPLY_MS)
    except OSError:
        pass  # dead line: the host re-asks; nothing here may block on it


def _small(a, t, x, s, v, nonce=None):
    # ERROR / PROGRESS: [t, x, s, v]; RESULT: [t, x, s, v, nonce], into the reply writer
    w = a.out
    buf = w.buf
    p = w.PAYLOAD
    buf[p] = 0x84 if nonce is None else 0x85
    buf[p + 1] = t
    p = put_head(0, x, buf, p + 2)
    p = put_head(0, s, buf, p)
    p = put_head(0, v, buf, p)
    if nonce is not None:
        buf[p] = 0x40 | _NONCE_LEN
        p += 1
        buf[p : p + _NONCE_LEN] = nonce
        p += _NONCE_LEN
    a._send_view(w.seal(p))


def _error(a, code, detail=0):
    # The request type answered: the payload's array head of 1..16 items, then a one-byte
    # uint; 0 when the payload does not show one.
    a.errors_out += 1
    p = a.cur
    t = p[1] if p is not None and len(p) > 1 and 0x81 <= p[0] <= 0x90 and p[1] < 24 else 0
    a._small(_MSG_ERROR, code, detail & 0xFFFFFFFF, t)


def _result(a, req, code, detail=0):
    a._small(_MSG_RESULT, req, code, detail & 0xFFFFFFFF, a.cmd_nonce)


def _internal(a, e):
    # A bug (or MemoryError) answered E_INTERNAL: ops.py, loaded once the failed request's
    # modules left the heap (a MemoryError leaves no room for it before); with no room even
    # then, answered from here: the agent must answer, not die.
    _a._drop_lazy(a)
    try:
        _a._ops().internal(a, e)
    except MemoryError:
        a.state = _IDLE
        try:
            a._error(_E_INTERNAL, _INTERNAL_NO_MEMORY if isinstance(e, MemoryError) else 0)
        except MemoryError:
            pass  # the host times out and asks again
    _a._drop(_COLD)


# ---- input ------------------------------------------------------------------------------------
def _next(a):
    # The next complete frame's payload, reading what the line holds (never blocks); None
    # when no frame is complete. a.got: bytes read meanwhile.
    parser = a.parser
    got = 0
    p = parser.next()
    reads = 0
    while p is None and reads < _MAX_READS:
        reads += 1
        k = parser.readinto_from(a.link)
        if not k:
            break
        got += k
        p = parser.next()
    a.got = got
    if got:
        a.rx_at = time.ticks_ms()  # the last byte's time: a partial frame's age (rest)
    return p


def _handle(a, p):
    # One frame. Returns None when handled, or a generator: a request that runs in slices.
    # DATA of a live transfer takes the hot path (allocates nothing); every other message is
    # served by serve.py, loaded for it and dropped again.
    a.frames_in += 1
    a.cur = p
    a.last_rx = time.ticks_ms()
    x = a.xfer
    if x is not None:
        if x.dv.parse(p):
            try:
                x.data()
            except Exception as e:
                # (a MemoryError in the failed write's own handler: its abort could not load)
                # answered, never the end of the agent; a try allocates nothing
                a._internal(e)
            return None
    try:
        if x is not None:
            # END of the live transfer: its own parse, no serve.py (slotend.py loads for it,
            # inside this handler: a MemoryError there is answered like any other request's)
            g = x.end_p(p)
            if g is not None:
                return g
        return _a._lazy("otalink.device.serve").handle(a, p)
    except ProtocolError as e:  # (device/errors.DeviceError is this class too)
        a._error(e.code, e.detail)
    except Exception as e:  # a bug (or MemoryError) must not take the line down
        a._internal(e)
    finally:
        _a._drop(_SERVE)
        _a._drop(_SMALL)
    return None


def _trace(a, p):
    mt = a.memtrace
    if mt is not None:
        import gc

        gc.collect()
        n = gc.mem_alloc()
        if n > mt[0]:
            mt[0] = n
            sys.stderr.write("otalink-mem live=%d after type %d\n" % (n, p[1]))


_PARTIAL_MS = const(500)  # a partial frame older than this (no byte since) does not hold rest


def rest(a):
    # Back to rest when nothing is in flight; False (and nothing changed) otherwise.
    p = a.port
    if a.busy or a.xfer is not None or (p is not None and p.inbox):
        return False
    if a.parser.buffered() and time.ticks_diff(time.ticks_ms(), a.rx_at) <= _PARTIAL_MS:
        return False  # a frame still arriving
    # (a partial frame whose line stayed silent that long is line noise or a host that died
    # mid-frame: it goes with the reader, as a UART's inter-byte timeout would drop it)
    _a._lazy("otalink.device.wake").strip(a)
    _a._drop(_WAKE)
    return True
