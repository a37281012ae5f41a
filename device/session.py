# The device side of the otalink protocol (docs/protocol.md; device behaviour in docs/device.md
# "Session"): one single-threaded, bounded loop serving one line.
#
#   Session(cfg, slots, link, idle_ms=None, parser=None)
#       parser: a hotpath.FrameReader(cfg.max_payload) made earlier (main.py makes it first, while
#       the heap is compact); None makes one here. (Change: parser is new, optional; FrameReader
#       is frame.FrameParser's device part, the device no longer loads frame.py.)
#   .run(max_ms=-1) -> RUN_RESET (host sent REBOOT) | RUN_STOP (max_ms elapsed)
#   .poll(timeout_ms)  one bounded step: wait for bytes, handle every complete frame
#
# States: IDLE (no transfer session on this line) and RECEIVING (after an accepted BEGIN).
# What is durable (slot states, transfer offset) lives in Slots; the session only keeps what a
# reconnect may lose. Replies:
#   HELLO -> INFO; STATUS_REQ -> STATUS (both signed by the ECU key over the exact body bytes)
#   BEGIN -> ACK(resume offset, window, PH_RECEIVING) | ERROR(code)    (verification first)
#   DATA  -> ACK(expected, window, PH_RECEIVING) for accept/duplicate/gap | ERROR E_OUT_OF_WINDOW
#   END, ACTIVATE, REBOOT, CONFIRM, REVERT, ABORT -> RESULT(type, code, detail)
#   a message the current state does not allow -> ERROR(E_BAD_STATE, type)
#   a malformed payload -> ERROR(code from the parser, detail)
# The per-DATA-frame path allocates nothing: link.readinto into the FrameReader's buffer,
# DataView over the payload, slots.write, ACK encoded into the FrameWriter's preallocated buffer.
#
# Heap: on the unix port loaded code lives in the GC heap, so a serving
# agent keeps only what a transfer needs: protocol/hotpath.py (DataView, ACK, RxWindow and the
# parser of the uint-only messages END, ACTIVATE, REBOOT, CONFIRM, REVERT, ABORT, ERROR), frame.py
# and codes.py. The full CBOR codec and message parsers (cbor, wire) and the crypto modules
# (auth, ed25519) are imported for HELLO / STATUS_REQ / BEGIN (and for a payload the small
# parser does not take, so malformed input gets the full parser's error) and dropped again right
# after (_lazy / _drop_lazy). main.py imports them once at start-up so their names are interned
# while the heap is still compact.
import gc
import hashlib
import sys
import time

from otalink.protocol.errors import ProtocolError
from otalink.protocol.hotpath import (
    DataView,
    FrameReader,
    FrameWriter,
    RxWindow,
    ack_into,
    frame,
    parse_small,
    put_head,
)

try:
    from micropython import const
except ImportError:  # CPython (tooling only)

    def const(x):
        return x


# protocol/codes.py values this module uses, as private consts (folded by the compiler; codes.py
# itself is ~100 names the heap would keep; tests/protocol/test_wire.py checks the copies)
_COMP_NONE = const(0)
_E_BAD_STATE = const(12)
_E_BUSY = const(43)
_E_INTERNAL = const(63)
_E_OUT_OF_WINDOW = const(20)
_E_VERSION = const(14)
_E_WIRE_LENGTH = const(22)
_MSG_ABORT = const(0xE)
_MSG_ACTIVATE = const(0xA)
_MSG_BEGIN = const(0x3)
_MSG_CONFIRM = const(0xC)
_MSG_DATA = const(0x4)
_MSG_END = const(0x8)
_MSG_ERROR = const(0xF)
_MSG_HELLO = const(0x1)
_MSG_INFO = const(0x2)
_MSG_PROGRESS = const(0x7)
_MSG_REBOOT = const(0xB)
_MSG_RESULT = const(0x9)
_MSG_REVERT = const(0xD)
_MSG_STATUS = const(0x6)
_MSG_STATUS_REQ = const(0x10)
_OK = const(0)
_PH_ERASING = const(2)
_PH_RECEIVING = const(1)
_PROTOCOL_VERSION = const(1)
_T_IDLE_MS = const(60000)
_T_REPLY_MS = const(2000)

IDLE = const(0)
RECEIVING = const(1)

RUN_STOP = const(0)
RUN_RESET = const(1)

_POLL_MS = const(100)  # one loop step; bounds how late an idle timeout is noticed
_OUT_PAYLOAD = const(64)  # ACK / RESULT / ERROR / PROGRESS fit easily
_MAX_READS = const(64)  # reads per poll(): a line that never goes quiet still returns to run()
_ACCEPT = const(0)  # transfer.ACCEPT / OUT_OF_WINDOW (tests/protocol/test_wire.py checks)
_OUT_OF_WINDOW = const(3)

# (package, modules) imported on demand and forgotten afterwards (see the heap note above). The two
# groups take turns: BEGIN and HELLO/STATUS_REQ use the codec, drop it, then load the crypto.
_CODEC = const(("otalink.protocol", ("wire", "cbor")))
_CRYPTO = const(("otalink.device", ("auth", "ed25519")))
_REPORT = const(("otalink.device", ("report",)))


def _lazy(name):
    # A cold-path module, imported right after a collection: first-fit allocation then puts its
    # code in the lowest free space instead of above the garbage the last request left behind
    # (nothing is ever moved, so code placed high would split the free heap for good).
    gc.collect()
    return __import__(name, None, None, ("*",))  # ("*",): the leaf module


def _report_mod():
    return _lazy("otalink.device.report")


def _crypto():
    return _lazy("otalink.device.auth")


def _messages():
    # the validating parser and the report / instruction codecs (messages.py re-exports them)
    return _lazy("otalink.protocol.wire")


def _parse(p):
    # (helpers below: see _on_begin on why module objects stay in their own frames)
    return _messages().parse(p)


def _decode(instr):
    # the instruction's fields (or the ProtocolError auth.check turns into E_BAD_INSTRUCTION)
    try:
        return _messages().decode_instruction(instr)
    except ProtocolError as e:
        return e


def _sign(seed, body):
    # ed25519 alone: auth's code is for BEGIN only
    return _lazy("otalink.device.ed25519").SigningKey(seed).sign(body)


def _verify(sess, instr, sigs, image_len, sha, now, fields):
    # -> (0, issued, version, release_counter, kind) | (-1, code, detail) of the failed check
    cfg = sess.cfg
    try:
        return (0,) + _crypto().check(
            cfg.director_keys,
            cfg.threshold,
            instr,
            sigs,
            cfg.ecu_id,
            cfg.hw_id,
            image_len,
            sha,
            sess.slot_size,
            sess.slots.release_floor,
            now,
            fields,
        )
    except ProtocolError as e:
        return (-1, e.code, e.detail)


def _drop(group):
    # Forget the modules so the GC can free their code; the next use imports them again.
    pkg_name, names = group
    pkg = sys.modules.get(pkg_name)
    for name in names:
        sys.modules.pop(pkg_name + "." + name, None)
        if pkg is not None and name in pkg.__dict__:
            delattr(pkg, name)


def _drop_lazy():
    _drop(_CODEC)
    _drop(_CRYPTO)
    _drop(_REPORT)


class Session:
    def __init__(self, cfg, slots, link, idle_ms=None, parser=None):
        self.cfg = cfg
        self.slots = slots
        self.link = link
        # Slots.caps() -> (window, slot_size, erase_size, write_size, deflate_wbits)
        _w, self.slot_size, es, ws, wbits = slots.caps()
        # INFO caps flags: what the storage accepts (CAP_DEFLATE_SEG: resumable deflate segments)
        self.caps = (es, ws, wbits, slots.cap_flags)
        self.max_payload = cfg.max_payload
        self.payload = cfg.max_payload  # negotiated in HELLO
        self.window = cfg.window
        self.idle_ms = _T_IDLE_MS if idle_ms is None else idle_ms
        self.parser = parser or FrameReader(cfg.max_payload)
        self.out = FrameWriter(_OUT_PAYLOAD)
        self.dv = DataView()
        self.rx = RxWindow(self.window)
        self.m = [0, 0, 0, 0]  # parse_small's output, reused
        self.state = IDLE
        self.instr = None  # exact BEGIN instruction bytes of the active transfer session
        self.params = None  # its (image_len, sha256, compression, wire_len)
        self.ins = None  # and what its checks returned: _verify's tuple
        self.wire_len = 0
        self.last_rx = time.ticks_ms()
        self.reset_requested = False
        self.memtrace = None  # list [peak] when the bench's memory hook is on
        # counters for diagnosis (and the tests)
        self.frames_in = 0
        self.errors_out = 0

    # ---- output ---------------------------------------------------------------------------
    def _send_view(self, view):
        try:
            self.link.write(view, len(view), _T_REPLY_MS)
        except OSError:
            pass  # dead line: the host re-asks; nothing here may block on it

    def _ack(self):
        w = self.out
        end = ack_into(w.buf, w.PAYLOAD, self.rx.expected, self.window, _PH_RECEIVING)
        self._send_view(w.seal(end))

    def _small(self, t, a, b, c=-1):
        # RESULT / ERROR / PROGRESS: a few uints, encoded into the preallocated writer.
        w = self.out
        buf = w.buf
        p = w.PAYLOAD
        n = 3 if c < 0 else 4
        buf[p] = 0x80 | n
        buf[p + 1] = t
        p = put_head(0, a, buf, p + 2)
        p = put_head(0, b, buf, p)
        if c >= 0:
            p = put_head(0, c, buf, p)
        self._send_view(w.seal(p))

    def _error(self, code, detail=0):
        self.errors_out += 1
        self._small(_MSG_ERROR, code, detail & 0xFFFFFFFF)

    def _result(self, req, code, detail=0):
        self._small(_MSG_RESULT, req, code, detail & 0xFFFFFFFF)

    def _erase_progress(self, done, total):
        # Slots.begin calls this per erased sector; every 8th (and the last) goes on the wire so
        # the host sees the device alive during a long erase without a frame per sector.
        if done == total or not done & 7:
            self._small(_MSG_PROGRESS, _PH_ERASING, done, total)

    # ---- reports ----------------------------------------------------------------------------
    def _report(self, t, nonce):
        # report.py builds the body, leaves, ed25519 signs it, leaves, report.py frames it: the
        # three never share the heap (nor with the codec, which parses BEGIN only).
        body = _report_mod().body(self, nonce)
        _drop(_REPORT)
        sig = _sign(self.cfg.ecu_seed, body)
        _drop(_CRYPTO)
        out = _report_mod().payload(t, body, sig)
        _drop(_REPORT)
        self._send_view(memoryview(frame(out)))

    # ---- input ------------------------------------------------------------------------------
    def poll(self, timeout_ms=_POLL_MS):
        """Wait up to timeout_ms for bytes, then handle every complete frame. Returns the number
        of frames handled."""
        n = 0
        if self.link.wait(timeout_ms):
            parser = self.parser
            # Drain what the line has now; readinto never blocks, and each pass handles frames
            # as soon as they are complete so the parser buffer never fills up.
            reads = 0
            while reads < _MAX_READS:
                reads += 1
                got = parser.readinto_from(self.link)
                p = parser.next()
                while p is not None:
                    n += 1
                    self._handle(p)
                    if self.reset_requested:
                        return n
                    p = parser.next()
                if not got:
                    break
        if n:
            self.last_rx = time.ticks_ms()
        elif (
            self.state == RECEIVING
            and time.ticks_diff(time.ticks_ms(), self.last_rx) > self.idle_ms
        ):
            # Idle transfer: back to IDLE; the durable offset stays in Slots for a resume.
            self.state = IDLE
        return n

    def run(self, max_ms=-1):
        start = time.ticks_ms()
        while True:
            self.poll(_POLL_MS)
            if self.reset_requested:
                return RUN_RESET
            if max_ms >= 0 and time.ticks_diff(time.ticks_ms(), start) >= max_ms:
                return RUN_STOP

    def _handle(self, p):
        self.frames_in += 1
        try:
            if self.dv.parse(p):
                self._on_data()
            elif parse_small(p, self.m) >= 0:
                self._on_message(self.m)  # uint-only messages: no codec loaded
            else:
                try:
                    self._on_message(_parse(p))
                finally:
                    _drop_lazy()
        except ProtocolError as e:  # (device/errors.DeviceError is this class too)
            self._error(e.code, e.detail)
        except Exception as e:  # a bug (or MemoryError) must not take the line down
            if not isinstance(e, MemoryError) and hasattr(sys, "print_exception"):
                sys.print_exception(e)
            gc.collect()
            self.state = IDLE
            try:
                self._error(_E_INTERNAL)
            except MemoryError:
                pass  # the host times out and asks again
        mt = self.memtrace
        if mt is not None:
            gc.collect()
            a = gc.mem_alloc()
            if a > mt[0]:
                mt[0] = a
                sys.stderr.write("otalink-mem live=%d after type %d\n" % (a, p[1]))

    # ---- DATA: the hot path -------------------------------------------------------------------
    def _on_data(self):
        if self.state != RECEIVING:
            self._error(_E_BAD_STATE, _MSG_DATA)
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
                self.state = IDLE
                self.instr = None
                self._code(self.slots.abort)
                self._error(e.code, e.detail)
                return
        elif c == _OUT_OF_WINDOW:
            self._error(_E_OUT_OF_WINDOW, self.rx.expected)
            return
        # DUP and GAP: dropped, the ACK tells the host where to continue
        self._ack()

    # ---- everything else ----------------------------------------------------------------------
    def _on_message(self, m):
        t = m[0]
        if t == _MSG_HELLO:
            self._on_hello(m)
        elif t == _MSG_STATUS_REQ:
            self._report(_MSG_STATUS, m[1])
        elif t == _MSG_BEGIN:
            self._on_begin(m)
        elif t == _MSG_END:
            self._on_end(m)
        elif t == _MSG_ACTIVATE:
            self._simple(t, self.slots.activate)
        elif t == _MSG_CONFIRM:
            self._simple(t, self.slots.confirm)
        elif t == _MSG_REVERT:
            self._simple(t, self.slots.revert)
        elif t == _MSG_ABORT:
            self.state = IDLE
            self.instr = None
            self._result(t, self._code(self.slots.abort))
        elif t == _MSG_REBOOT:
            if self.state == RECEIVING:
                self.state = IDLE  # the durable offset survives the reset
            self._result(t, _OK)
            self.reset_requested = True
        elif t == _MSG_ERROR:
            # The host gave up on this exchange: drop the session, keep durable state.
            self.state = IDLE
        else:
            # Device->host types (INFO, ACK, STATUS, PROGRESS, RESULT) are not requests.
            self._error(_E_BAD_STATE, t)

    def _code(self, fn):
        try:
            return fn()
        except ProtocolError as e:
            return e.code

    def _simple(self, t, fn):
        if self.state == RECEIVING:
            self._error(_E_BAD_STATE, t)
            return
        self._result(t, self._code(fn))

    def _on_hello(self, m):
        if m[1] != _PROTOCOL_VERSION:
            self._error(_E_VERSION, _PROTOCOL_VERSION)
            return
        hp = m[3]
        self.payload = hp if hp < self.max_payload else self.max_payload
        self._report(_MSG_INFO, m[2])

    def _on_begin(self, m):
        instr = bytes(m[1])
        if self.state == RECEIVING and instr != self.instr:
            self._error(_E_BUSY)
            return
        image_len = m[3]
        sha = bytes(m[4])
        comp = m[5]
        wire_len = m[6]
        s = self.slots
        trusted = s.trusted_time
        params = (image_len, sha, comp, wire_len)
        if instr == self.instr and params == self.params:
            # The live transfer again (the host reconnected): these exact bytes passed every
            # check in this process and nothing they were checked against has changed since (the
            # release floor and trusted time move only on CONFIRM / another instruction's BEGIN).
            ins = self.ins
        else:
            if self.instr is not None and instr != self.instr:
                # Another instruction while one is interrupted: the interrupted transfer's RAM
                # state (decoder, running hash) goes first, as a reset would take it; its durable
                # record stays, so it still resumes from its last checkpoint if this BEGIN is
                # refused. The verification below needs that room.
                self._code(s.park)
            tf = self.cfg.time_floor
            # The codec and the crypto each work in a helper's frame and hand back only plain
            # values: a module object left in a live frame's stack slots (or an object whose
            # methods hold a lazy module's globals) would keep that code in the heap beside the
            # transfer's buffers.
            fields = _decode(instr)
            _drop(_CODEC)
            try:
                ins = _verify(
                    self, instr, m[2], image_len, sha, trusted if trusted > tf else tf, fields
                )
            finally:
                _drop_lazy()  # before s.begin(): the transfer's buffers never sit beside it
            fields = None
            if ins[0] < 0:
                # nothing was written: the active slot (and any other slot) is untouched
                self.state = IDLE
                self._error(ins[1], ins[2])
                return
        issued = ins[1]
        if comp == _COMP_NONE and wire_len != image_len:
            self._error(_E_WIRE_LENGTH, wire_len)
            return
        if self.state == IDLE and self.instr is not None and self.instr != instr:
            # This process still holds an interrupted transfer (link lost, idle timeout) and
            # the host now wants another image: the new BEGIN replaces it (protocol section 7:
            # "0 if the instruction differs").
            self._code(s.abort)
            self.instr = None
        if issued > trusted:
            s.note_time(issued)
        resume = s.begin(
            hashlib.sha256(instr).digest(),
            image_len,
            sha,
            wire_len,
            comp,
            ins[2],
            ins[3],
            ins[4],
            self._erase_progress,
        )
        self.instr = instr
        self.params = params
        self.ins = ins
        self.wire_len = wire_len
        rx = self.rx
        rx.window = self.window
        rx.wire_len = wire_len
        rx.resume(resume)
        self.state = RECEIVING
        self._ack()

    def _on_end(self, m):
        if self.state != RECEIVING:
            self._error(_E_BAD_STATE, _MSG_END)
            return
        if m[1] != self.wire_len or self.rx.expected != self.wire_len:
            self._result(_MSG_END, _E_WIRE_LENGTH, self.rx.expected)
            return
        self.state = IDLE
        self.instr = None
        self._result(_MSG_END, self._code(self.slots.finish))
