# The DATA path of Slots (slots.py), loaded with a transfer and dropped after it (at BEGIN's end
# for a deflate stream, session.Transfer.claim; else by the first DATA, Slots.write;
# slots.drop_write() forgets it), so an idle agent holds none of this code (the transfer's start
# and end: slotbegin.py, slotend.py):
#   write(s, offset, mv) -> next expected wire offset   (Slots.write; zero heap allocation in
#                                                         steady state)
#   drain(s, final)     take what the ring holds (decompress, program)    put(s, k)  program a unit
#   final(s) -> code    END's last drain; the decoder must end there, and leaves after it
# `s` is the Slots object; its buffers (ring, program unit, steps) are made by store.bufs().

from micropython import const
from otalink.device import slots as _slots
from otalink.protocol.errors import ProtocolError as DeviceError

try:
    import deflate
except ImportError:  # a port built without it: announce deflate_wbits 0 (no compression)
    deflate = None

# protocol/codes.py values used here, as private consts (tests/protocol/test_wire.py checks them)
_OK = const(0)
_COMP_NONE = const(0)
_COMP_DEFLATE_SEG = const(2)
_E_BAD_STATE = const(12)
_E_BAD_OFFSET = const(21)
_E_WIRE_LENGTH = const(22)
_E_LENGTH_MISMATCH = const(38)
_E_FLASH = const(40)
_E_DECOMPRESS = const(41)


def write(s, offset, mv):
    # Hot path, no allocation in steady state: the payload goes through the ring in pieces
    # (ring.write(mv, start, n) takes a view's tail without slicing it), then is drained:
    # decompress into the preallocated program unit, sha256 update, program, a checkpoint
    # record every erase sector.
    if s.live != 1:
        raise DeviceError(_E_BAD_STATE, 0)
    if offset != s.t_wire:
        raise DeviceError(_E_BAD_OFFSET, s.t_wire)
    n = len(mv)
    end = offset + n
    if end > s.wire_len:
        raise DeviceError(_E_WIRE_LENGTH, s.wire_len)
    ring = s.ring
    w = 0
    try:
        while w < n:
            if w:
                drain(s, False)  # ring full: make room
            k = ring.write(mv, w, n - w)
            if not k:
                # the decoder takes no more input: bytes after the deflate stream's end
                raise DeviceError(_E_DECOMPRESS, s.t_img)
            w += k
        s.t_wire = end
        drain(s, end == s.wire_len)
    except OSError as e:
        raise DeviceError(_E_FLASH, e.errno if hasattr(e, "errno") else 0)
    return end


def drain(s, final):
    # Take what the ring holds: whole program units (uncompressed), or deflate output in
    # steps (halves of the program unit, filled in place) while the ring holds the margin
    # (all of it when final): the decompressor must never run dry mid-symbol (DeflateIO
    # raises EOFError and its state is lost; store.init sizes both). Deflate segments: a
    # length prefix, then one complete raw-deflate stream per segment (a fresh DeflateIO:
    # its state cannot be reused) pulled while the ring holds the margin or the rest of the
    # segment; the decoder stops at the stream's final block, so what it consumed is exact
    # (ring.any() before - after). A segment ending on an erase-sector boundary is a durable
    # checkpoint: (wire offset, image offset).
    ring = s.ring
    chunk = s.chunk
    comp = s.comp
    if comp == _COMP_NONE:
        cbuf = s.cbuf
        while ring.any() >= chunk:
            ring.readinto(cbuf)
            put(s, chunk)
        k = ring.any()
        if final and k:
            ring.readinto(cbuf, k)
            put(s, k)
        return
    seg = comp == _COMP_DEFLATE_SEG
    if not seg:
        s.buffer = None  # the decoder's room (session.Transfer.claim): its state and window take it
    dio = s.dio
    steps = s.steps
    step = len(steps[0])
    margin = 2 * step + 512  # store.init explains the margin
    fill = s.fill
    left = s.seg_left  # segments: compressed bytes left in this one, -1 = prefix next
    used = s.w_cons  # segments: wire bytes taken out of the ring
    try:
        while True:
            avail = ring.any()
            if not seg:
                if avail < margin and not final:
                    break
            elif left < 0:
                if avail < 4:
                    break
                p = s.rbuf  # (free between commits: commit() probes into it first)
                ring.readinto(p, 4)
                left = p[0] | p[1] << 8 | p[2] << 16 | p[3] << 24
                used += 4
                if left == 0 or used + left > s.wire_len:
                    raise DeviceError(_E_DECOMPRESS, s.t_img)
                # The new decoder's object first, while the previous decoder (or, for the first
                # segment, the room session.Transfer.claim keeps) still holds its blocks: a
                # collection at this small allocation would hand it the start of the hole the
                # state and window need next (the line bench at 64k: the window then found 31 of
                # its 32 blocks). Its state and window are made at its first read, once the
                # previous decoder and the room are garbage (their holes: same sizes).
                d = deflate.DeflateIO(ring, deflate.RAW, s.wbits)
                s.buffer = None
                s.dio = dio = d
                d = None
                continue
            elif avail < margin and avail < left:
                break  # more input needed (final: the wire is short; finish() reports)
            try:
                k = dio.readinto(steps[fill // step])
            except (OSError, EOFError, ValueError):
                raise DeviceError(_E_DECOMPRESS, s.t_img)
            fill += k
            if fill == chunk:
                put(s, chunk)
                fill = 0
            if seg:
                avail -= ring.any()
                left -= avail
                used += avail
                if left < 0:
                    raise DeviceError(_E_DECOMPRESS, s.t_img)
            if k < step:  # the stream ended
                if not seg:
                    break
                if left:
                    raise DeviceError(_E_DECOMPRESS, s.t_img)
                if used == s.wire_len:
                    s.dio = dio = None  # the last segment: END's code never sits beside it
                # (else the ended decoder stays until the next one's object is made: above)
                left = -1
                img = s.t_img
                if fill:
                    if used != s.wire_len:  # only the last segment may end here
                        raise DeviceError(_E_DECOMPRESS, img)
                elif img % s.es == 0 and img < s.t_len:
                    s.wire_off = used
                    s.image_off = img
                    s.commit()
    finally:
        s.fill = fill
        s.seg_left = left
        s.w_cons = used
    if final and fill:
        put(s, fill)
        s.fill = 0


def final(s):
    # END's last drain (session.Transfer.end, before slotend.py loads; slotend otherwise): the
    # ring's rest through the decoder, whose stream must end exactly there (no trailing
    # output); then the decoder's state and window (~2.4 KiB) leave, so END's code and the
    # read-back never sit beside them. -> _OK or the stream's error code
    code = _OK
    try:
        drain(s, True)
        if s.dio is not None and s.t_img == s.t_len and s.dio.readinto(s.cbuf, 1):
            code = _E_LENGTH_MISMATCH
    except DeviceError as e:
        code = e.code
    except (OSError, EOFError, ValueError):
        code = _E_DECOMPRESS
    s.dio = None
    return code


def put(s, k):
    # program one unit (k valid bytes, the rest padded with 0xFF) at the image offset
    img = s.t_img
    if img + k > s.t_len:
        raise DeviceError(_E_LENGTH_MISMATCH, img + k)
    cbuf = s.cbuf
    if k < s.chunk:
        for i in range(k, s.chunk):  # the tail only: once per transfer
            cbuf[i] = 0xFF
        s.sha.update(memoryview(cbuf)[:k])
    else:
        s.sha.update(cbuf)
    if not s.dry:  # (a receive probe: decoded and hashed, never written)
        s.regions[s.t_slot].program(img, cbuf)
    img += k
    s.t_img = img
    if img % s.es == 0 and s.comp == _COMP_NONE and img < s.t_len:
        # durable checkpoint at every erase-sector boundary (uncompressed: wire == image)
        s.wire_off = img
        s.image_off = img
        s.commit()


# Slots.write calls write() through this while the module is loaded
_slots._w = write
