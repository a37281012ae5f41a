# BEGIN and PROBE of the agent (docs/protocol.md 6.2, "Receive probe"), loaded for the request
# and dropped after it (the second stage: slotbegin.start / probe_start; the transfer's steady
# part: session.py):
#   begin(agent, m) -> generator   verify (sliced), offer to the application (DEFER), load the
#                                  transfer machinery, erase (sliced), ACK
#   probe(agent, m) -> generator   the same receive path into no flash (a dry run)

from otalink.device import agent as _a
from otalink.protocol.errors import ProtocolError
from otalink.protocol.hotpath import frame, put_head

try:
    from micropython import const
except ImportError:  # CPython (tooling only)

    def const(x):
        return x


# protocol/codes.py values this module uses, as private consts (tests/protocol/test_wire.py)
_COMP_NONE = const(0)
_E_BAD_MESSAGE = const(10)
_E_BUSY = const(43)
_E_HASH_MISMATCH = const(37)
_E_LENGTH_MISMATCH = const(38)
_E_WIRE_LENGTH = const(22)
_MSG_BEGIN = const(0x3)
_MSG_DEFER = const(0x12)
_MSG_PROGRESS = const(0x7)
_DEFER_MAX_REASON = const(48)
_PH_ERASING = const(2)
_RETRY_S = const(30)
_CODEC = const(0)  # agent._CODEC
_IDLE = const(0)  # agent._IDLE
_RECEIVING = const(1)  # agent._RECEIVING


class Offer:
    # What on_offer sees of a verified update (BEGIN): the instruction's fields
    def __init__(self, version, release_counter, image_len, kind):
        self.version = version
        self.release_counter = release_counter
        self.image_len = image_len
        self.kind = kind


def _defer(a, req, retry_s, reason):
    # DEFER [18, req, retry_after_s, reason]: the application deferred the request
    r = reason.encode()[:_DEFER_MAX_REASON]
    b = bytearray(16 + len(r))
    b[0] = 0x84
    b[1] = _MSG_DEFER
    p = put_head(0, req, b, 2)
    p = put_head(0, retry_s, b, p)
    p = put_head(3, len(r), b, p)
    b[p : p + len(r)] = r
    a._send_view(memoryview(frame(memoryview(b)[: p + len(r)])))


def _verify(a, instr, sigs, image_len, sha, slot_size, floor, now, fields):
    # -> (0, issued, version, release_counter, kind) | (-1, code, detail), sliced (a generator)
    cfg = a.cfg
    auth = _a._lazy("otalink.device.auth")
    yield  # (the crypto's import, then its first step: one slice each)
    try:
        r = yield from auth.check_g(
            cfg.director_keys, cfg.threshold, instr, sigs, cfg.ecu_id, cfg.hw_id, image_len,
            sha, slot_size, floor, now, fields,
        )  # fmt: skip
        return (0,) + r
    except ProtocolError as e:
        return (-1, e.code, e.detail)


def _decode(instr):
    # the instruction's fields (or the ProtocolError auth.check turns into E_BAD_INSTRUCTION)
    try:
        return _a._lazy("otalink.protocol.wire").decode_instruction(instr)
    except ProtocolError as e:
        return e


def begin(a, m):
    instr = bytes(m[1])
    if a.state == _RECEIVING and instr != a.instr:
        raise ProtocolError(_E_BUSY)
    image_len = m[3]
    sha = bytes(m[4])
    comp = m[5]
    wire_len = m[6]
    sigs = m[2]
    params = (image_len, sha, comp, wire_len)
    same = instr == a.instr and a.ins is not None
    _a._drop(_CODEC)
    if same:
        # The live (or interrupted) transfer's instruction again (the host reconnected): these
        # exact bytes passed every check in this process and nothing they were checked against
        # has changed since, so no crypto is loaded. BEGIN's own fields are checked again
        # against the values that passed with them.
        ins = a.ins
        if image_len != a.params[0]:
            raise ProtocolError(_E_LENGTH_MISMATCH)
        if sha != a.params[1]:
            raise ProtocolError(_E_HASH_MISMATCH)
    else:
        # Another instruction: the interrupted transfer's RAM state goes first, as a reset
        # would take it (its durable record stays, so it still resumes from its last
        # checkpoint if this BEGIN is refused); the verification needs the room.
        a._unload()
        s = a._slots()
        floor = s.release_floor
        trusted = s.trusted_time
        slot_size = s.slot_size
        a._done(s)
        s = None
        tf = a.cfg.time_floor
        yield  # (the storage's modules, then the codec's: one slice each)
        fields = _decode(instr)
        _a._drop(_CODEC)
        yield
        try:
            ins = yield from _verify(
                a, instr, sigs, image_len, sha, slot_size, floor, trusted if trusted > tf else tf,
                fields,
            )  # fmt: skip
        finally:
            _a._drop_lazy()  # before the transfer's buffers: they never sit beside the crypto
        fields = None
        sigs = None
        if ins[0] < 0:
            # nothing was written: the active slot (and any other slot) is untouched
            a.state = _IDLE
            raise ProtocolError(ins[1], ins[2])
        # The application may defer a verified update (nothing is erased; the host retries)
        h = a.on_offer
        if h is not None:
            r = h(Offer(ins[2], ins[3], image_len, ins[4]))
            if r:
                reason, retry = (r, _RETRY_S) if isinstance(r, str) else r
                _defer(a, _MSG_BEGIN, retry, reason)
                return
    # the second stage loads the transfer once this module (and the crypto) left the heap
    return _a._lazy("otalink.device.slotbegin").start(a, instr, params, ins, same)


def probe(a, m):
    # PROBE [19, image_len, sha256, compression, wire_len]: a dry-run transfer through the same
    # frame / window / decompression / hash path, writing no flash (docs/protocol.md "Receive
    # probe"); refused while a transfer is live (ABORT it first).
    if a.state == _RECEIVING or a.xfer is not None:
        raise ProtocolError(_E_BUSY)
    image_len = m[1]
    sha = bytes(m[2])
    comp = m[3]
    wire_len = m[4]
    _a._drop(_CODEC)
    if comp == _COMP_NONE and wire_len != image_len:
        raise ProtocolError(_E_WIRE_LENGTH, wire_len)
    yield
    return _a._lazy("otalink.device.slotbegin").probe_start(a, (image_len, sha, comp, wire_len))
