# The transfer machinery of the agent (device/agent.py), loaded at BEGIN / PROBE and dropped after
# END, ABORT or a transfer left idle for keep_ms (docs/device.md "Agent"): the per-DATA-frame hot
# path, the receive window, the ACK writer, a Slots with its ring and program unit buffer, the
# max_payload frame reader, the deflate decoder.
#
#   Transfer(agent, slots, dry=False, comp=0)   .dv (DataView) .rx (RxWindow) .data() .end(m)
#                                  -> generator; slots: made by slotbegin._transfer (with buffers);
#                                  comp: the stream's compression (a decoder's room or none)
#
# Only what a running transfer needs stays in the heap with it: BEGIN's and PROBE's second stage
# (start, probe_start: slotbegin.py, dropped after BEGIN) and END (slotend.end, loaded at END)
# live in the modules of the transfer's start and end; the write path (slotwrite.py) is loaded
# after BEGIN's modules left the heap: by claim() for a deflate stream, just before its
# decoder's room, else by the first DATA (Slots.write; a patch never loads it).
#
# The per-DATA-frame path allocates nothing: the agent's reader delivers the payload, DataView
# parses it, RxWindow classifies, Slots.write programs, ack_into writes into the agent's
# preallocated reply writer, the link sends it (tests/device_session/mp_test_zero_alloc.py runs it
# under heap_lock).

from otalink.device import agent as _a
from otalink.device import slots as _slots
from otalink.protocol.errors import ProtocolError

try:
    from micropython import const
except ImportError:  # CPython (tooling only)

    def const(x):
        return x


# protocol/codes.py values this module uses, as private consts (tests/protocol/test_wire.py)
_E_BAD_STATE = const(12)
_E_OUT_OF_WINDOW = const(20)
_E_PROBE_FAILED = const(64)
_MSG_DATA = const(0x4)
_MSG_END = const(0x8)
_PH_RECEIVING = const(1)
_ACCEPT = const(0)  # transfer.ACCEPT / OUT_OF_WINDOW (tests/protocol/test_wire.py checks)
_OUT_OF_WINDOW = const(3)
_STORE = const(6)  # agent._STORE
_XFER = const(7)  # agent._XFER
_PATH = const(8)  # agent._PATH
# DeflateIO's decoder beside its window, bytes, on the unix port (x86-64; less on 32-bit boards):
# tests/device_session/mp_test_decoder_room.py checks it against the decoder the port makes
_DEC_STATE = const(1376)
_COMP_NONE = const(0)
_COMP_DEFLATE_SEG = const(2)
_COMP_PATCH = const(3)  # (a raw patch: no decoder; the other compressions make one)
_IDLE = const(0)  # agent._IDLE
_RECEIVING = const(1)  # agent._RECEIVING


class Transfer:
    room = False  # the decoder's room is still to claim (claim())

    def __init__(self, a, s, dry=False, comp=_COMP_NONE):
        # s: the Slots with its ring and program unit (slotbegin._transfer makes it before this
        # module loads, so session.py takes the hole store.py left)
        self.a = a
        self.dry = dry  # a receive probe: nothing is written
        self.slots = s
        if s.wbits and comp != _COMP_NONE and comp != _COMP_PATCH:
            self.room = True  # a decoder will be made: its room, once BEGIN's code left
        from otalink.protocol import datapath as d

        self.dv = d.DataView()
        self.rx = d.RxWindow(a.window)
        self.ack = d.ack_into

    def claim(self):
        # A deflate stream's decoder room, claimed at the end of BEGIN / PROBE once the
        # request's code (slotbegin.py) has left the heap (agent._drop_lazy, after a
        # collection): never live beside it (at 64k BEGIN ran out claiming it there).
        # DeflateIO makes its state and then its window at its first read (the first DATA),
        # after slotwrite.py has loaded into the holes BEGIN left; these two blocks, freed by
        # the first drain just before that read, keep a hole for each (first fit: the state
        # takes the first hole that holds it, at worst the state's block; the window then
        # still finds one). Two blocks, not one of their sum: no single 2.4 KiB hole is needed.
        # (`buffer`: a name the port has built in, none interned.) No room for it now: the
        # first DATA makes the decoder without one.
        self.room = False
        s = self.slots
        if _slots._w is None and s.comp < _COMP_PATCH:
            # The write path first (slotwrite.py, the first DATA's otherwise; a patch has its
            # own, slotpatch.py): its code takes the lowest of the holes BEGIN's code left, and
            # the room what is above it. Loaded at the first DATA it had to fit beside the room
            # (at 64-65k it did not, or the room could not be claimed and the decoder's window
            # then found no hole).
            _slots._write()
        if s.buffer is None:
            try:
                s.buffer = (bytearray(_DEC_STATE), bytearray(1 << s.wbits))
            except MemoryError:
                pass

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
        _a._drop(_XFER)
        _a._drop(_PATH)
        _a._drop(_STORE)
        import gc

        gc.collect()

    def _ack(self):
        w = self.a.out
        end = self.ack(w.buf, w.PAYLOAD, self.rx.expected, self.a.window, _PH_RECEIVING)
        self.a._send_view(w.seal(end))

    # ---- DATA: the hot path -------------------------------------------------------------------
    def data(self):
        a = self.a
        if a.state != _RECEIVING:
            a._error(_E_BAD_STATE, _MSG_DATA)
            return
        dv = self.dv
        off = dv.offset
        data = dv.data
        c = self.rx.classify(off, len(data))
        if c == _ACCEPT:
            try:
                self.rx.expected = self.slots.write(off, data)
            except Exception as e:
                # The transfer cannot continue (flash, decompression, too long; or anything else:
                # a MemoryError when the decoder's state cannot be made, a bug, answered
                # E_INTERNAL instead of leaving the hot path and ending the agent): it ends here
                # (docs/protocol.md section 5); the host starts over with BEGIN. The active slot
                # is untouched.
                a.state = _IDLE
                pe = isinstance(e, ProtocolError)
                if not pe:
                    a._unload()  # its buffers first: the abort below needs room
                if not self.dry:
                    a._code("abort")
                elif a.trial:
                    a.note_fault(_E_PROBE_FAILED)  # the probe failed on a trial boot
                a._unload()
                if pe:
                    a._error(e.code, e.detail)
                else:
                    a._internal(e)
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
        if self.a.state != _RECEIVING:
            return None
        return self.end((_MSG_END, v))

    def end(self, m):
        # END: slotend.py (the read-back and the probe's answer), loaded for it. A complete
        # stream takes its last drain first (slotwrite.final): the decoder's state and window
        # (~2.4 KiB) have left before slotend.py loads, END's peak (a wrong END leaves the
        # transfer as it was: slotend answers it)
        a = self.a
        s = self.slots
        pre = -1
        if (
            m[1] == a.wire_len
            and self.rx.expected == a.wire_len
            and s.live == 1
            and s.t_wire == s.wire_len
            and s.comp <= _COMP_DEFLATE_SEG
        ):
            from otalink.device.slotwrite import final

            pre = final(s)
        return _a._lazy("otalink.device.slotend").end(self, m, pre)
