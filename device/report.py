# The ECU's signed version report (INFO / STATUS, docs/protocol.md), built without the CBOR codec.
# Loaded by the session per HELLO / STATUS_REQ and dropped again before ed25519 is loaded to sign,
# so neither this code nor the codec sits in the heap beside the crypto:
#   body(agent, slots, nonce) -> bytearray   the report body (wire.encode_report makes the same
#                                  bytes: shortest-form heads, definite lengths;
#                                  tests/device_session checks the host decodes it)
#   payload(t, body, sig) -> bytearray    [t, body, sig]: what messages.info / status make
#   run(agent, t, nonce) -> generator     INFO / STATUS: the body, then ed25519 in slices (the
#                                         agent's line task yields between them), then the frame
from otalink.protocol.hotpath import frame, put_head

try:
    from micropython import const
except ImportError:  # CPython (tooling only)

    def const(x):
        return x


# protocol/codes.py values this module uses, as private consts (tests/protocol/test_wire.py)
_PROTOCOL_VERSION = const(2)
_PH_RECEIVING = const(1)
_RECEIVING = const(1)  # session.RECEIVING
_MAX_BODY = const(1024)  # wire._MAX_BODY: the longest report body
_CRYPTO = const(1)  # agent._CRYPTO


def _put(v, b, p):
    # CBOR of uints, text, bytes and lists/tuples of them into b at p; returns the end. b None:
    # only the length is counted (body() sizes its buffer exactly: a 1 KiB block once failed
    # at 64k in a heap with 12 KB free in smaller holes).
    if isinstance(v, int):
        return put_head(0, v, b, p) if b is not None else p + head_len(v)
    if isinstance(v, (list, tuple)):
        p = put_head(4, len(v), b, p) if b is not None else p + head_len(len(v))
        for x in v:
            p = _put(x, b, p)
        return p
    if isinstance(v, str):
        v = v.encode()
        t = 3
    else:
        t = 2
    if b is None:
        return p + head_len(len(v)) + len(v)
    p = put_head(t, len(v), b, p)
    b[p : p + len(v)] = v
    return p + len(v)


def head_len(n):
    # length of a CBOR head for n (put_head writes the same; cbor.py's name: one qstr for both)
    return 1 if n < 24 else 2 if n < 0x100 else 3 if n < 0x10000 else 5 if n < 0x100000000 else 9


def body(a, s, nonce):
    # a: the agent, s: its Slots
    active, boot_state, last_error, slots_list, trial_boots = s.report()
    _w, slot_size, erase_size, write_size, wbits = s.caps()
    caps = (a.payload, a.window, slot_size, erase_size, write_size, wbits, s.cap_flags)
    phase, off, wire_len, image_len = s.transfer()
    x = a.xfer
    if a.state == _RECEIVING and phase == _PH_RECEIVING and x is not None:
        off = x.rx.expected
    v = [
        _PROTOCOL_VERSION,
        a.cfg.ecu_id,
        a.cfg.hw_id,
        bytes(nonce),
        active,
        boot_state,
        last_error,
        slots_list,
        caps,
        (phase, off, wire_len, image_len),
        s.release_floor,
        s.trusted_time,
        trial_boots,
        a.cmd_nonce,  # what the next signed command must carry
        a.version,  # the answering agent's version (issue 11)
        (a.app_state, s.fault, s.wdt_trips),  # the application and the trial's faults
    ]
    n = _put(v, None, 0)
    if n > _MAX_BODY:
        raise IndexError(n)  # (E_INTERNAL, like wire's E_TOO_LARGE)
    b = bytearray(n)
    _put(v, b, 0)
    return b


def payload(t, body, sig):
    n = len(body)
    out = bytearray(2 + (1 if n < 24 else 2 if n < 0x100 else 3) + n + 2 + len(sig))
    out[0] = 0x83
    out[1] = t
    p = put_head(2, n, out, 2)
    out[p : p + n] = body
    p = put_head(2, len(sig), out, p + n)
    out[p:] = sig
    return out


def run(a, t, nonce):
    # INFO / STATUS for the agent: the body, then the signature in slices (ed25519 loaded for it
    # and dropped), then the frame
    from otalink.device import agent as _a

    s = a._slots()
    try:
        b = body(a, s, bytes(nonce))
    finally:
        a._done(s)
        s = None
    yield
    ed = _a._lazy("otalink.device.ed25519")
    seed = a.cfg.ecu_seed
    if a.pub is None:
        a.pub = yield from ed.public_g(seed)
    sig = yield from ed.sign_g(seed, a.pub, b)
    ed = None
    _a._drop(_CRYPTO)
    a._send_view(memoryview(frame(payload(t, b, sig))))
