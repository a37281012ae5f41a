# A patch transfer in Slots (compression COMP_PATCH 3 / COMP_PATCH_DEFLATE_SEG 4, docs/protocol.md
# "Delta updates", docs/adr/0006-delta-updates.md): the wire carries a detools sequential patch
# (raw, or in deflate segments) and the device writes its RESULT into the inactive slot. Loaded
# by slotbegin.begin_g only for a patch transfer (a full image never loads this module nor
# delta.py) and kept alive by the Slots it is installed in (Slots.write is this module's write
# while the transfer runs; flash._mod keeps it out of sys.modules):
#   check_base(s)                     E_BASE_MISMATCH unless the active slot holds the base the
#                                     signed instruction binds (s.pbase; None = format 1: refused)
#   start(s, image_len, d, w) -> (d, w)  the applier over the active slot, restored from the
#                                     durable checkpoint (s.ck) when resuming at image offset d
#   PatchIO.write(offset, mv)         the DATA path (as slotwrite.write)
#   PatchIO.finish()                  END: the rest of the stream, the patch must end exactly
# The result goes through the program unit (s.cbuf: the Patcher's output buffer), the running
# sha256 and Region.program exactly as a full image's (slotwrite.put's twin: _put); slotend then
# reads the slot back and checks the result's sha256 before VERIFIED, as for every image.
#
# Durable checkpoint (power-safe: one state record, written at an erase-sector boundary of the
# result, with the erase-sector checkpoints of a full image): image_off = result bytes programmed,
# wire_off = where the host resumes, ck = the Patcher's 17-byte save() + 3 bytes (u24 LE): the
# patch offset at wire_off. Raw (3): wire_off is the patch offset itself. Deflate segments (4):
# wire_off is the start of the segment being decoded (a segment's decoder state cannot be saved),
# so a resume decodes that segment again and skips the patch bytes before the checkpoint's patch
# offset. After a reset begin_g re-hashes the result up to image_off from flash, erases after it,
# and the host resends from wire_off; a checkpoint the Patcher refuses restarts from 0.
from micropython import const
from otalink.device.flash import _mod
from otalink.protocol.errors import ProtocolError as DeviceError

try:
    import deflate
except ImportError:
    deflate = None

# protocol/codes.py values used here, as private consts (tests/protocol/test_wire.py checks them)
_COMP_PATCH = const(3)
_E_BAD_STATE = const(12)
_E_BAD_OFFSET = const(21)
_E_WIRE_LENGTH = const(22)
_E_LENGTH_MISMATCH = const(38)
_E_FLASH = const(40)
_E_DECOMPRESS = const(41)
_E_BASE_MISMATCH = const(44)
_SLOT_CONFIRMED = const(5)
_CK_LEN = const(17)  # delta._CK_LEN: the Patcher's save()
_STEP = const(128)  # deflate output per pull (store._STEP: the same margin argument and ring)
_MAX_P0 = const(0xFFFFFF)


def check_base(s):
    # A patch applies only to the exact base the Director signed: the active slot's recorded
    # sha256 (checked by its own read-back when it was installed) and a confirmed slot.
    b = s.pbase if "pbase" in s.__dict__ else None
    if b is None:
        raise DeviceError(_E_BASE_MISMATCH, 0)  # a format-1 instruction binds no base
    v = s.slot[s.active]
    if v[0] != _SLOT_CONFIRMED or v[4] <= 0 or bytes(v[5]) != b:
        raise DeviceError(_E_BASE_MISMATCH, 1)


def start(s, image_len, d, w):
    # -> (d, w): the image / wire offsets to continue from ((0, 0) if the checkpoint is not
    # usable). Installs PatchIO.write as this Slots' write (an instance attribute over the
    # class's method; slotbegin removes it for the next full-image transfer).
    p = PatchIO(s, image_len)
    if d or w:
        try:
            p.pat.load(s.ck, 0)
            if p.pat.checkpoint()[1] != d or (s.comp == _COMP_PATCH and p.pat.pos != w):
                raise ValueError
            p0 = s.ck[17] | s.ck[18] << 8 | s.ck[19] << 16
            if p0 > p.pat.pos:
                raise ValueError
            p.skip = p.pat.pos - p0
        except ValueError:
            p.pat.restore((0, 0, 0, 0, 0))
            d = w = 0
    s.pio = p
    s.write = p.write
    return d, w


class PatchIO:
    def __init__(self, s, image_len):
        self.s = s
        base = s.slot[s.active][4]
        self.pat = _mod("delta").Patcher(s.regions[s.active], base, image_len, s.cbuf, self._put)
        self.seg = s.comp != _COMP_PATCH
        self.obuf = bytearray(_STEP) if self.seg else None  # deflate output (patch bytes)
        self.skip = 0  # segments: patch bytes to drop (a resume inside a segment)
        self.w0 = 0  # segments: wire offset of the current segment's prefix
        self.p0 = 0  # segments: patch offset where the current segment starts

    def _put(self, k):
        # the Patcher's unit is full (or its last k bytes): hash, program, checkpoint
        s = self.s
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
        s.regions[s.t_slot].program(img, cbuf)
        img += k
        s.t_img = img
        if img % s.es == 0 and img < s.t_len:
            pat = self.pat
            p0 = self.p0 if self.seg else pat.pos
            if p0 <= _MAX_P0:  # (a patch over 16 MiB: no checkpoint, a reset restarts)
                pat.save(s.ck, 0)
                ck = s.ck
                ck[_CK_LEN] = p0 & 0xFF
                ck[_CK_LEN + 1] = p0 >> 8 & 0xFF
                ck[_CK_LEN + 2] = p0 >> 16
                s.wire_off = self.w0 if self.seg else pat.pos
                s.image_off = img
                s.commit()

    def write(self, offset, mv):
        # DATA: as slotwrite.write (checks, then the bytes into the applier)
        s = self.s
        if s.live != 1:
            raise DeviceError(_E_BAD_STATE, 0)
        if offset != s.t_wire:
            raise DeviceError(_E_BAD_OFFSET, s.t_wire)
        n = len(mv)
        end = offset + n
        if end > s.wire_len:
            raise DeviceError(_E_WIRE_LENGTH, s.wire_len)
        try:
            if not self.seg:
                self.pat.feed(mv, 0, n)
            else:
                ring = s.ring
                w = 0
                while w < n:
                    if w:
                        self._drain(False)  # ring full: make room
                    k = ring.write(mv, w, n - w)
                    if not k:
                        raise DeviceError(_E_DECOMPRESS, s.t_img)
                    w += k
                self._drain(end == s.wire_len)
        except OSError as e:
            raise DeviceError(_E_FLASH, e.errno if hasattr(e, "errno") else 0)
        s.t_wire = end
        return end

    def _drain(self, final):
        # slotwrite.drain's segment walk, its output fed to the Patcher instead of programmed:
        # a length prefix, then one raw-deflate stream pulled 128 bytes (store._STEP) at a time
        # while the ring holds the margin or the rest of the segment (the decoder must never run
        # dry mid-symbol)
        s = self.s
        ring = s.ring
        obuf = self.obuf
        pat = self.pat
        margin = 2 * _STEP + 512
        left = s.seg_left
        used = s.w_cons
        dio = s.dio
        try:
            while True:
                avail = ring.any()
                if left < 0:
                    if avail < 4:
                        break
                    p = s.rbuf
                    ring.readinto(p, 4)
                    left = p[0] | p[1] << 8 | p[2] << 16 | p[3] << 24
                    self.w0 = used
                    self.p0 = pat.pos - self.skip
                    used += 4
                    if left == 0 or used + left > s.wire_len:
                        raise DeviceError(_E_DECOMPRESS, s.t_img)
                    # the new decoder's object while the previous one (or the room) still holds
                    # its blocks (slotwrite.drain says why), then they go
                    d = deflate.DeflateIO(ring, deflate.RAW, s.wbits)
                    s.buffer = None
                    s.dio = dio = d
                    d = None
                    continue
                if avail < margin and avail < left:
                    break
                try:
                    k = dio.readinto(obuf)
                except (OSError, EOFError, ValueError):
                    raise DeviceError(_E_DECOMPRESS, s.t_img)
                avail -= ring.any()
                left -= avail
                used += avail
                if left < 0:
                    raise DeviceError(_E_DECOMPRESS, s.t_img)
                j = self.skip
                if j:
                    if j > k:
                        j = k
                    self.skip -= j
                if k > j:
                    pat.feed(obuf, j, k - j)
                if k < _STEP:  # the segment's stream ended
                    if left:
                        raise DeviceError(_E_DECOMPRESS, s.t_img)
                    if used == s.wire_len:
                        s.dio = dio = None  # the last segment (else kept until the next's object)
                    left = -1
        finally:
            s.seg_left = left
            s.w_cons = used

    def finish(self):
        # END (slotend.finish_g): the rest of the stream; the patch must end exactly here
        s = self.s
        if self.seg:
            self._drain(True)
            if s.w_cons != s.wire_len or s.seg_left >= 0 or self.skip:
                raise DeviceError(_E_DECOMPRESS, s.t_img)
        self.pat.finish()
