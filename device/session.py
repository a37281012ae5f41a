# The transfer machinery of the agent (device/agent.py), loaded at BEGIN / PROBE and dropped after
# END, ABORT or a transfer left idle for keep_ms (docs/device.md "Agent"): the per-DATA-frame hot
# path, the receive window, the ACK writer, a Slots with its ring and program unit buffer, the
# max_payload frame reader, the deflate decoder.
#
#   start(agent, instr, params, ins, same) -> generator   BEGIN's second stage (begin.py checked
#                                  and verified): replace an older stream, load the transfer,
#                                  erase (sliced), ACK
#   probe_start(agent, params) -> generator   PROBE's: the same into no flash (a dry run)
#   Transfer(agent, dry=False)     .dv (DataView) .rx (RxWindow) .data() .end(m) -> generator
#
# The per-DATA-frame path allocates nothing: the agent's reader delivers the payload, DataView
# parses it, RxWindow classifies, Slots.write programs, ack_into writes into the agent's
# preallocated reply writer, the link sends it (tests/device_session/mp_test_zero_alloc.py runs it
# under heap_lock).

import hashlib

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
_COMP_PATCH = const(3)  # a patch, raw: needs no decoder
_E_BAD_MESSAGE = const(10)
_E_BAD_STATE = const(12)
_E_OUT_OF_WINDOW = const(20)
_E_PROBE_FAILED = const(64)
_E_WIRE_LENGTH = const(22)
_MSG_DATA = const(0x4)
_MSG_END = const(0x8)
_MSG_PROBE = const(0x13)
_MSG_PROGRESS = const(0x7)
_PH_ERASING = const(2)
_PH_RECEIVING = const(1)
_PH_VERIFYING = const(3)
_ACCEPT = const(0)  # transfer.ACCEPT / OUT_OF_WINDOW (tests/protocol/test_wire.py checks)
_OUT_OF_WINDOW = const(3)


class Transfer:
    def __init__(self, a, dry=False):
        # The big blocks first (first-fit: while the heap is freshest), then the code: the Slots
        # with its ring and program unit, then slotwrite.py and datapath.py.
        self.a = a
        self.dry = dry  # a receive probe: nothing is written
        self.slots = s = a._slots()
        _a._lazy("otalink.device.store").bufs(s)
        _a._drop(("otalink.device", ("store",)))
        from otalink.device import slotwrite  # noqa: F401  (Slots.write: the hot path)
        from otalink.protocol import datapath as d

        self.dv = d.DataView()
        self.rx = d.RxWindow(a.window)
        self.ack = d.ack_into

    def unload(self):
        # the transfer machinery goes: its RAM state, buffers and write path (Slots.rest()),
        # this module, slotwrite.py and datapath.py; the durable record stays.
        a = self.a
        a.xfer = None
        a.instr = None
        a.params = None
        a.ins = None
        self.slots.rest()
        self.slots = None
        self.ack = None
        _a._drop(_a.XFER)
        _a._drop(_a.PATH)
        _a._drop(_a.STORE)
        import gc

        gc.collect()

    def _ack(self):
        w = self.a.out
        end = self.ack(w.buf, w.PAYLOAD, self.rx.expected, self.a.window, _PH_RECEIVING)
        self.a._send_view(w.seal(end))

    # ---- DATA: the hot path -------------------------------------------------------------------
    def data(self):
        a = self.a
        if a.state != _a.RECEIVING:
            a._error(_E_BAD_STATE, _MSG_DATA)
            return
        dv = self.dv
        off = dv.offset
        data = dv.data
        c = self.rx.classify(off, len(data))
        if c == _ACCEPT:
            try:
                self.rx.expected = self.slots.write(off, data)
            except ProtocolError as e:
                # The transfer cannot continue (flash, decompression, too long): it ends here
                # (docs/protocol.md section 5); the host starts over with BEGIN. The active slot
                # is untouched.
                a.state = _a.IDLE
                if not self.dry:
                    a._code("abort")
                elif a.trial:
                    a.note_fault(_E_PROBE_FAILED)  # the probe failed on a trial boot
                a._unload()
                a._error(e.code, e.detail)
                return
        elif c == _OUT_OF_WINDOW:
            a._error(_E_OUT_OF_WINDOW, self.rx.expected)
            return
        # DUP and GAP: dropped, the ACK tells the host where to continue
        self._ack()

    # ---- END -------------------------------------------------------------------------------
    def end_p(self, p):
        # END [8, wire_len] straight from the payload (the agent's fast path: no dispatch module
        # loaded beside the transfer); None for any other form (the full path answers it)
        n = len(p)
        if n < 3 or p[0] != 0x82 or p[1] != _MSG_END:
            return None
        v = p[2]
        if v < 24 and n == 3:
            pass
        elif v == 24 and n == 4 and p[3] >= 24:
            v = p[3]
        elif v == 25 and n == 5 and (p[3] << 8 | p[4]) >= 0x100:
            v = p[3] << 8 | p[4]
        elif v == 26 and n == 7:
            v = p[3] << 24 | p[4] << 16 | p[5] << 8 | p[6]
            if v < 0x10000:
                return None
        else:
            return None
        if self.a.state != _a.RECEIVING:
            return None
        return self.end((_MSG_END, v))

    def end(self, m):
        a = self.a
        rx = self.rx
        if m[1] != a.wire_len or rx.expected != a.wire_len:
            a._result(_MSG_END, _E_WIRE_LENGTH, rx.expected)
            return
        a.state = _a.IDLE
        a.instr = None
        s = self.slots
        if self.dry:
            # a receive probe: what was decoded, for the host to compare (and on a trial boot
            # the reason a REVERT will record when it is not what the host sent)
            code, n, sha = _a._lazy("otalink.device.slotend").probe_end(s)
            want = a.params
            if a.trial and (code or n != want[0] or sha != want[1]):
                a.note_fault(_E_PROBE_FAILED)
            a._unload()
            out = bytearray(2 + 5 + 34 + 1 + 5)
            out[0] = 0x85
            out[1] = _MSG_PROBE
            p = put_head(0, n, out, 2)
            p = put_head(2, 32, out, p)
            out[p : p + 32] = sha
            p = put_head(0, want[2], out, p + 32)
            p = put_head(0, want[3], out, p)
            a._send_view(memoryview(frame(memoryview(out)[:p])))
            return
        a._small(_MSG_PROGRESS, _PH_VERIFYING, 0, 1)
        code = yield from _a._lazy("otalink.device.slotend").finish_g(s)
        a._unload()
        a._result(_MSG_END, code)


def _erase_progress(a):
    # slotbegin.begin_g calls this per erased sector; every 8th (and the last) goes on the wire
    # so the host sees the device alive during a long erase without a frame per sector
    def progress(done, total):
        if done == total or not done & 7:
            a._small(_MSG_PROGRESS, _PH_ERASING, done, total)

    return progress


def start(a, instr, params, ins, same):
    # BEGIN's second stage: begin.py (checks, verification, the application's offer) returned
    # this generator and left the heap before the transfer's buffers are made
    image_len, sha, comp, wire_len = params
    issued = ins[1]
    # BEGIN's stream fields, before anything is replaced (a refused BEGIN leaves a live
    # transfer as it was)
    if comp == _COMP_NONE and wire_len != image_len:
        raise ProtocolError(_E_WIRE_LENGTH, wire_len)
    if a.instr is not None and params != a.params:
        # Another stream (another image, or the same instruction with another compression /
        # wire_len) replaces the interrupted one from 0: none of its offsets or decoder state
        # carries over (protocol section 7).
        a._unload()
        a._code("abort")
        a.instr = None
        a.state = _a.IDLE
    x = a.xfer
    if x is None:
        x = a.xfer = Transfer(a)
    s = x.slots
    if comp != _COMP_NONE and comp != _COMP_PATCH and not s.wbits:
        a._unload()
        raise ProtocolError(_E_BAD_MESSAGE, comp)  # no deflate on this port (caps wbits 0)
    if issued > s.trusted_time:
        s.note_time(issued)
    s.pbase = ins[5]  # the delta base the instruction binds (None: format 1), for a patch
    try:
        resume = yield from _a._lazy("otalink.device.slotbegin").begin_g(
            s, hashlib.sha256(instr).digest(), image_len, sha, wire_len, comp, ins[2], ins[3],
            ins[4], _erase_progress(a),
        )  # fmt: skip
    except ProtocolError:
        a._unload()
        raise
    a.instr = instr
    a.params = params
    a.ins = ins
    a.wire_len = wire_len
    rx = x.rx
    rx.window = a.window
    rx.wire_len = wire_len
    rx.resume(resume)
    a.state = _a.RECEIVING
    x._ack()


def probe_start(a, params):
    # PROBE's second stage: the transfer machinery over a Slots that writes nothing
    image_len, _sha, comp, wire_len = params
    x = a.xfer = Transfer(a, True)
    try:
        _a._lazy("otalink.device.slotbegin").probe(x.slots, image_len, wire_len, comp)
    except ProtocolError:
        a._unload()
        raise
    yield
    a.instr = None
    a.ins = None
    a.params = params
    a.wire_len = wire_len
    rx = x.rx
    rx.window = a.window
    rx.wire_len = wire_len
    rx.resume(0)
    a.state = _a.RECEIVING
    x._ack()
