# The end of a transfer in Slots (slotops.finish / finish_g / probe_end are these), loaded at END
# and dropped with the transfer:
#   finish_g(s) -> generator -> code   drain, check, read the slot back and hash it (a slice per
#                                      16 KiB); VERIFIED (or EMPTY) committed
#   probe_end(s) -> (code, image bytes decoded, their sha256)   the end of a receive probe
#   end(x, m) -> generator             END of the agent's transfer x (session.Transfer): the
#                                      above, RESULT(END) or a probe's PROBE answer, unload
import hashlib

from micropython import const
from otalink.protocol.errors import ProtocolError as DeviceError

# protocol/codes.py values used here, as private consts (tests/protocol/test_wire.py checks them)
_OK = const(0)
_COMP_DEFLATE_SEG = const(2)
_E_BAD_STATE = const(12)
_E_WIRE_LENGTH = const(22)
_E_HASH_MISMATCH = const(37)
_E_LENGTH_MISMATCH = const(38)
_E_FLASH = const(40)
_E_DECOMPRESS = const(41)
_MSG_END = const(0x8)
_MSG_PROBE = const(0x13)
_MSG_PROGRESS = const(0x7)
_PH_VERIFYING = const(3)
_E_PROBE_FAILED = const(64)
_SLOT_EMPTY = const(0)
_SLOT_VERIFIED = const(2)
_NO_SLOT = const(255)
_IDLE = const(0)  # agent._IDLE


def finish_g(s, pre=-1):
    # finish() as a generator (the read-back hash yields every 16 KiB). pre: the code of END's
    # last drain when it ran already (slotwrite.final, before this module loaded), else -1
    if not s.live:
        return _E_BAD_STATE
    code = _OK
    try:
        if s.live == 1:
            if s.t_wire != s.wire_len:
                return _E_WIRE_LENGTH
            if s.comp > _COMP_DEFLATE_SEG:
                try:
                    s.pio.finish()  # a patch (slotpatch.py): the rest, it must end exactly
                except DeviceError as e:
                    code = e.code
                except (OSError, EOFError, ValueError):
                    code = _E_DECOMPRESS
            elif pre >= 0:
                code = pre
            else:
                from otalink.device.slotwrite import final  # (a patch never loads it)

                code = final(s)
            if code == _OK and s.t_img != s.t_len:
                code = _E_LENGTH_MISMATCH
            if code == _OK and s.comp == _COMP_DEFLATE_SEG:
                if s.w_cons != s.wire_len or s.seg_left >= 0:
                    code = _E_DECOMPRESS  # bytes after the last segment, or a cut one
            if code == _OK and s.sha.digest() != s.slot[s.t_slot][5]:
                code = _E_HASH_MISMATCH
        s.dio = None  # (the stream is over: no decoder beside the read-back)
        if code == _OK and not (yield from _hash_g(s, s.t_slot)):
            code = _E_HASH_MISMATCH
        s.slot[s.t_slot][0] = _SLOT_VERIFIED if code == _OK else _SLOT_EMPTY
        s.tslot = _NO_SLOT
        s.wire_off = 0
        s.image_off = 0
        s.live = 0
        s.dio = None
        s.commit()
    except OSError:
        s.live = 0
        return _E_FLASH
    return code


def probe_end(s, pre=-1):
    # -> (code, image bytes decoded, sha256 of them): END of a probe (pre: as finish_g's)
    if pre < 0:
        from otalink.device.slotwrite import final

        pre = final(s)
    code = pre
    if code == _OK and s.comp == _COMP_DEFLATE_SEG and (s.w_cons != s.wire_len or s.seg_left >= 0):
        code = _E_DECOMPRESS
    s.live = 0
    s.dio = None
    return code, s.t_img, s.sha.digest()


def _hash_g(s, slot):
    # read the slot back and compare with its recorded sha256 (decide._hash_g's twin: the
    # transfer does not load decide.py); yields every 16 KiB read
    v = s.slot[slot]
    n = v[4]
    if n <= 0 or n > s.slot_size:
        return False
    reg = s.regions[slot]
    h = hashlib.sha256()
    buf = s.cbuf
    c = s.chunk
    full = n - n % c
    for a in range(0, full, c):
        reg.read(a, buf)
        h.update(buf)
        if not (a + c) & 0x3FFF:
            yield
    if full < n:
        reg.read(full, buf)
        h.update(memoryview(buf)[: n - full])
    return h.digest() == v[5]


def end(x, m, pre=-1):
    # END [8, wire_len] of the agent's transfer x (session.Transfer loads this module for it;
    # it goes with the transfer's modules); pre: as finish_g's
    from otalink.protocol.hotpath import frame, put_head

    a = x.a
    rx = x.rx
    if m[1] != a.wire_len or rx.expected != a.wire_len:
        a._result(_MSG_END, _E_WIRE_LENGTH, rx.expected)
        return
    a.state = _IDLE
    a.instr = None
    s = x.slots
    if x.dry:
        # a receive probe: what was decoded, for the host to compare (and on a trial boot
        # the reason a REVERT will record when it is not what the host sent)
        code, n, sha = probe_end(s, pre)
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
    code = yield from finish_g(s, pre)
    a._unload()
    a._result(_MSG_END, code)
