# The decoder's room (device/session.py, Transfer): a deflate transfer on a port with deflate
# claims two blocks at the end of BEGIN, once BEGIN's code has left the heap (Transfer.claim),
# the sizes of DeflateIO's decoder state and window; the first DATA frees them just before the
# decoder makes those, so they never need a new hole in the heap BEGIN's code left fragmented.
# END's last drain drops the decoder before END's module loads. Checked here: the room holds the
# decoder this port really makes, its lifetime (BEGIN's end -> first DATA; gone with the
# transfer), that a stream without a decoder claims none, and END's order.
# mpy-heapsize: 512k
import gc
import hashlib
import os
from binascii import hexlify

from mp_session_cfg import GEOM, Cfg, RingLink
from otalink.device import ed25519
from otalink.device.agent import Agent
from otalink.device.flash import NorFlash, geometry
from otalink.device.slots import Slots
from otalink.protocol import codes, messages
from otalink.protocol.frame import frame
from stored_deflate import stored_deflate

WBITS = 10
RECEIVING = 1  # agent._RECEIVING (a private const() there)


def _decoder_bytes():
    # the heap DeflateIO makes at its first read, as the agent's drain reads (one 256-byte step)
    import deflate
    from micropython import RingIO

    data = bytes(range(256)) * 4
    ring = RingIO(2048)
    ring.write(stored_deflate(data))
    d = deflate.DeflateIO(ring, deflate.RAW, WBITS)
    out = bytearray(256)
    gc.collect()
    before = gc.mem_alloc()
    assert d.readinto(out) == 256 and out == data[:256]
    gc.collect()
    return gc.mem_alloc() - before


def _flash_path():
    return "/tmp/otalink-room-" + hexlify(os.urandom(6)).decode() + ".bin"


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _begun(path, image, comp, wire, on_slice=None):
    # an agent on a port with deflate, after an accepted BEGIN of `image` sent as `wire`
    # (on_slice(agent): called between BEGIN's slices)
    director = ed25519.SigningKey(bytes(range(32)))
    g = geometry(dict(GEOM, deflate_wbits=WBITS))
    bdev = NorFlash(path, g["size"], g["erase_size"], g["write_size"])
    Slots(bdev, g).boot()
    link = RingLink(16384)
    a = Agent(Cfg(director.public, bytes(32)), link, bdev, g)
    if on_slice is not None:
        a.on_slice = lambda: on_slice(a)
    sha = hashlib.sha256(image).digest()
    instr = messages.encode_instruction(
        "bms-1", "hw-1", "2.0.0", 2, len(image), sha, 1000, 2000, "app", 0
    )
    kid = hashlib.sha256(director.public).digest()[:8]
    sigs = [[kid, director.sign(instr)]]
    link.ring.write(frame(messages.begin(instr, sigs, len(image), sha, comp, len(wire))))
    a.poll(0)
    assert a.state == RECEIVING and a.errors_out == 0, (a.state, a.errors_out)
    return link, a


def _send(link, a, wire, start):
    # the DATA frames of `wire` from `start`, 1 KiB each, each handled at once
    for o in range(start, len(wire), 1024):
        link.ring.write(frame(messages.data(o, wire[o : o + 1024])))
        a.poll(0)


def test_a_deflate_transfer_holds_the_room_from_begin_to_its_first_data():
    path = _flash_path()
    try:
        image = bytes((i * 7) & 0xFF for i in range(12 * 1024))
        wire = stored_deflate(image)
        link, a = _begun(path, image, codes.COMP_DEFLATE, wire)
        s = a.xfer.slots
        room = s.buffer
        assert type(room) is tuple and len(room) == 2, room
        # a block for the decoder's state and one for its window, together big enough for the
        # decoder this port makes (the constant follows the port)
        assert len(room[1]) == 1 << WBITS, len(room[1])
        assert len(room[0]) + len(room[1]) >= _decoder_bytes(), (len(room[0]), _decoder_bytes())
        room = None
        chunk = 1024
        link.ring.write(frame(messages.data(0, wire[:chunk])))
        a.poll(0)
        assert a.errors_out == 0 and a.xfer.rx.expected == chunk
        assert s.buffer is None  # the decoder took its place
        _send(link, a, wire, chunk)
        assert a.errors_out == 0 and a.xfer.rx.expected == len(wire)
        link.ring.write(frame(messages.end(len(wire))))
        a.poll(0)
        assert a.errors_out == 0, a.errors_out
        assert a.xfer is None  # END unloaded the transfer: nothing of it, the room included
    finally:
        _remove(path)


def test_an_uncompressed_transfer_claims_no_room():
    # no decoder will be made: the room would only cost BEGIN 2.4 KB
    path = _flash_path()
    try:
        image = bytes((i * 5) & 0xFF for i in range(4096))
        link, a = _begun(path, image, codes.COMP_NONE, image)
        s = a.xfer.slots
        assert s.buffer is None, s.buffer
        link.ring.write(frame(messages.data(0, image[:1024])))
        a.poll(0)
        assert a.errors_out == 0 and a.xfer.rx.expected == 1024
    finally:
        _remove(path)


def test_the_decoder_leaves_before_the_read_back_and_the_slots_table_stays_small():
    # END's read-back hash (slotend._hash_g, a slice per 16 KiB) runs without the decoder's
    # state and window, and a deflate transfer's Slots keeps <= 47 attributes: its table is not
    # grown (a copy beside the old one) to 59 entries in the middle of BEGIN
    path = _flash_path()
    try:
        image = bytes((i * 11) & 0xFF for i in range(40 * 1024))
        wire = stored_deflate(image)
        link, a = _begun(path, image, codes.COMP_DEFLATE, wire)
        s = a.xfer.slots
        assert len(s.__dict__) <= 47, len(s.__dict__)
        _send(link, a, wire, 0)
        assert a.errors_out == 0 and s.dio is not None
        assert len(s.__dict__) <= 47, len(s.__dict__)
        seen = []
        a.on_slice = lambda: seen.append(s.dio)  # (drive.finish: between END's slices)
        link.ring.write(frame(messages.end(len(wire))))
        a.poll(0)
        assert a.errors_out == 0 and a.xfer is None
        assert len(seen) >= 2 and seen == [None] * len(seen), seen
    finally:
        _remove(path)


def test_the_room_is_claimed_once_begin_code_has_left():
    # BEGIN's second stage (slotbegin.py: the Slots, the transfer's modules, the sliced erase)
    # never holds the room beside its code: at 64k claiming it there ran out of heap. (Its
    # module left sys.modules when the stage began; its generator holds the code until the end.)
    path = _flash_path()
    seen = []

    def during_begin(a):
        x = a.xfer
        if x is not None:
            seen.append(x.slots.buffer is not None)

    try:
        image = bytes((i * 13) & 0xFF for i in range(20 * 1024))
        wire = stored_deflate(image)
        _link, a = _begun(path, image, codes.COMP_DEFLATE, wire, during_begin)
        assert seen and True not in seen, seen  # the erase's slices, the transfer made
        assert type(a.xfer.slots.buffer) is tuple  # claimed at BEGIN's end
    finally:
        _remove(path)


def test_end_drops_the_decoder_before_its_module_loads():
    # END's last drain runs in the transfer's own modules (slotwrite.final): slotend.py loads
    # with no decoder state and window beside it (END's peak before this)
    from otalink.device import agent as agent_mod

    path = _flash_path()
    lazy = agent_mod._lazy
    seen = []
    try:
        image = bytes((i * 17) & 0xFF for i in range(12 * 1024))
        wire = stored_deflate(image)
        link, a = _begun(path, image, codes.COMP_DEFLATE, wire)
        s = a.xfer.slots
        _send(link, a, wire, 0)
        assert a.errors_out == 0 and s.dio is not None

        def spy(name):
            if name == "otalink.device.slotend":
                seen.append(s.dio)
            return lazy(name)

        agent_mod._lazy = spy
        # an END of another length is answered (E_WIRE_LENGTH) and leaves the transfer, its
        # decoder included, as it was: the right END still completes it
        link.ring.write(frame(messages.end(len(wire) + 1)))
        a.poll(0)
        assert a.xfer is not None and s.dio is not None and s.live == 1
        del seen[:]  # (slotend.py answered it, beside the decoder the transfer still needs)
        link.ring.write(frame(messages.end(len(wire))))
        a.poll(0)
        assert a.errors_out == 0 and a.xfer is None
        assert seen == [None], seen
    finally:
        agent_mod._lazy = lazy
        _remove(path)


def test_a_deflate_transfer_loads_its_write_path_at_begin_end_before_the_room():
    # slotwrite.py's code takes the holes BEGIN's code just left, before the room is claimed: at
    # the first DATA it would have to fit beside the room, and at 64-65k it did not (the first
    # DATA ran out loading it, or the room could not be claimed and the decoder's window then
    # found no hole). An uncompressed transfer claims no room: its write path still loads with
    # the first DATA.
    import sys

    seen = []  # per load of the write path: was the room still unclaimed?
    spied = []

    def spy_on(a):
        # between BEGIN's slices, once the transfer is made: the storage module its session uses
        # (a request loads that module again, and drops it from sys.modules)
        if a.xfer is None:
            return
        m = getattr(sys.modules["otalink.device.session"], "_slots", None)
        m = m or sys.modules.get("otalink.device.slots")
        if m is None:
            return
        if not spied or spied[-1] is not m:
            write = m._write

            def spy():
                x = a.xfer
                seen.append(x is not None and x.slots.buffer is None)
                return write()

            m._write = spy
            spied.append(m)

    paths = [_flash_path(), _flash_path()]
    try:
        image = bytes((i * 19) & 0xFF for i in range(12 * 1024))
        wire = stored_deflate(image)
        link, a = _begun(paths[0], image, codes.COMP_DEFLATE, wire, spy_on)
        m = spied[-1]
        assert seen == [True], seen  # loaded once, at BEGIN's end, the room not yet claimed
        assert m._w is not None and type(a.xfer.slots.buffer) is tuple, m._w
        _send(link, a, wire, 0)
        link.ring.write(frame(messages.end(len(wire))))
        a.poll(0)
        assert a.errors_out == 0 and a.xfer is None and m._w is None
        assert seen == [True], seen  # the DATA frames loaded nothing more
        image = bytes((i * 23) & 0xFF for i in range(4096))
        del seen[:], spied[:]
        link, a = _begun(paths[1], image, codes.COMP_NONE, image, spy_on)
        m = spied[-1]
        assert seen == [] and m._w is None, seen  # not before its first DATA
        link.ring.write(frame(messages.data(0, image[:1024])))
        a.poll(0)
        assert a.errors_out == 0 and len(seen) == 1 and m._w is not None, seen
    finally:
        for p in paths:
            _remove(p)


def test_a_patch_in_segments_claims_its_room_without_the_write_path():
    # A patch (compression 4) decodes too, so it claims the room, but writes through its own
    # path (slotpatch.py): slotwrite.py is not loaded for it (it was, at BEGIN's end, beside
    # the patch applier); a deflate stream's transfer loads it there
    from otalink.device import session
    from otalink.device import slots as slots_mod

    class Stub:
        window = 4096

    path = _flash_path()
    try:
        g = geometry(dict(GEOM, deflate_wbits=WBITS))
        s = Slots(NorFlash(path, g["size"], g["erase_size"], g["write_size"]), g)
        slots_mod.drop_write()
        for comp, loads in ((codes.COMP_PATCH_DEFLATE_SEG, False), (codes.COMP_DEFLATE_SEG, True)):
            s.comp = comp
            s.buffer = None
            x = session.Transfer(Stub(), s, comp=comp)
            assert x.room, comp
            x.claim()
            assert type(s.buffer) is tuple, comp
            assert (slots_mod._w is not None) == loads, (comp, slots_mod._w)
            slots_mod.drop_write()
    finally:
        slots_mod.drop_write()
        _remove(path)
