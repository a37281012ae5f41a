# The agent's requests other than DATA (device/agent.py loads this module for one frame and
# drops it again, so an idle agent holds none of it):
#   handle(agent, p) -> None | generator   one frame's payload: parsed (the uint-only messages
#                                          and APP without the codec), answered or started
# Replies (docs/protocol.md section 5; docs/device.md "Agent"):
#   HELLO -> INFO; STATUS_REQ -> STATUS (report.py: signed by the ECU key, in slices)
#   BEGIN / PROBE -> session.py (the transfer machinery); END -> the live transfer
#   ACTIVATE .. ABORT (signed commands) -> commands.py
#   APP -> the application channel (port.py)
#   ERROR from the host -> the session drops to IDLE (durable state and RAM state kept)
#   a message the state does not allow / a device-to-host type -> ERROR(E_BAD_STATE, type)
#   a malformed payload -> ERROR(code of the full parser, detail)
from otalink.device import agent as _a
from otalink.protocol.small import parse_app, parse_small

try:
    from micropython import const
except ImportError:  # CPython (tooling only)

    def const(x):
        return x


# protocol/codes.py values (private copies, tests/protocol/test_wire.py checks them)
_E_APP_CHANNEL = const(80)
_E_BAD_STATE = const(12)
_E_CMD_AUTH = const(70)
_E_VERSION = const(14)
_MSG_ABORT = const(0xE)
_MSG_ACTIVATE = const(0xA)
_MSG_APP = const(0x11)
_MSG_BEGIN = const(0x3)
_MSG_END = const(0x8)
_MSG_ERROR = const(0xF)
_MSG_HELLO = const(0x1)
_MSG_INFO = const(0x2)
_MSG_PROBE = const(0x13)
_MSG_STATUS = const(0x6)
_MSG_STATUS_REQ = const(0x10)
_PROTOCOL_VERSION = const(2)
_CODEC = const(0)  # agent._CODEC
_COLD = const(3)  # agent._COLD
_IDLE = const(0)  # agent._IDLE
_RECEIVING = const(1)  # agent._RECEIVING


def handle(a, p):
    m = a.m
    t = parse_small(p, m)
    if t >= 0:
        return _message(a, m)  # uint-only messages: no codec loaded
    t = p[1] if len(p) > 1 else -1
    if _MSG_ACTIVATE <= t <= _MSG_ABORT:
        # a signed command: commands.py checks (sliced ed25519) and runs it; None: not a signed
        # command's shape (the full parser answers it: E_CMD_AUTH for the unsigned [type])
        g = _a._lazy("otalink.device.commands").check(a, p)
        if g is not None:
            return g
        _a._drop(_COLD)
    elif t == _MSG_APP and parse_app(p, m) >= 0:
        _app(a, m)
        return None
    elif t == _MSG_BEGIN and a.ins is not None:
        # the live (or interrupted) transfer's instruction again, a resume: the codec never
        # loads beside the transfer's buffers and its stream decoder (protocol/resume.py,
        # loaded only then: an idle agent's requests never carry it; dropped with small.py)
        if _a._lazy("otalink.protocol.resume").parse_begin(p, m, a.instr) >= 0:
            return _message(a, m)
    try:
        m = _a._lazy("otalink.protocol.wire").parse(p)
    finally:
        _a._drop(_CODEC)  # before the request's own modules load: never both in the heap
    return _message(a, m)


def _message(a, m):
    t = m[0]
    if t == _MSG_HELLO:
        if m[1] != _PROTOCOL_VERSION:
            a._error(_E_VERSION, _PROTOCOL_VERSION)
            return None
        hp = m[3]
        a.payload = hp if hp < a.max_payload else a.max_payload
        return _a._lazy("otalink.device.report").run(a, _MSG_INFO, m[2])
    if t == _MSG_STATUS_REQ:
        return _a._lazy("otalink.device.report").run(a, _MSG_STATUS, m[1])
    if t == _MSG_END:
        if a.state != _RECEIVING or a.xfer is None:
            a._error(_E_BAD_STATE, _MSG_END)
            return None
        return a.xfer.end(m)
    if t == _MSG_BEGIN or t == _MSG_PROBE:
        s = _a._lazy("otalink.device.begin")
        return s.begin(a, m) if t == _MSG_BEGIN else s.probe(a, m)
    if t == _MSG_APP:
        _app(a, m)
    elif _MSG_ACTIVATE <= t <= _MSG_ABORT:
        # (only reachable if the full parser took a command the byte-level one did not:
        # tests/protocol/test_command.py shows it cannot happen)
        a._error(_E_CMD_AUTH, 0)
    elif t == _MSG_ERROR:
        a.state = _IDLE  # the host gave up on this exchange; durable state (and RAM) kept
    else:
        a._error(_E_BAD_STATE, t)  # device->host types are not requests
    return None


def _app(a, m):
    # APP from the host: to the application channel (port.py), or no handler: E_APP_CHANNEL
    if a.on_message is None:
        a._error(_E_APP_CHANNEL, m[1])
    else:
        a._port().request(m)
