# The per-DATA-frame path of the agent allocates nothing: link read -> FrameReader -> DataView
# -> RxWindow -> Slots.write (flash emulator) -> ACK encode -> link write, and the agent's step
# around it (agent.poll: the frame search, the dispatch, the timers), run with the heap locked
# (any allocation raises MemoryError, which the agent turns into an ERROR reply).
# Steady state means: after the views for a payload length / offset width exist. When an offset
# first needs a wider CBOR head (>= 24, 256, 65536) one small view is made once; the image here
# stays below 64 KiB so every locked frame is steady state.
# mpy-heapsize: 512k
import micropython
from mp_session_cfg import GEOM, Cfg, RingIn
from otalink.device import ed25519
from otalink.device.agent import Agent
from otalink.device.flash import NorFlash, geometry
from otalink.device.slots import Slots
from otalink.protocol import codes, messages
from otalink.protocol.frame import frame

# agent._IDLE / _RECEIVING (private const()s there: no module attribute under MicroPython)
RECEIVING = 1


class RingLink(RingIn):
    # link adapter over a RingIO: reads and writes without allocating
    def __init__(self, size):
        super().__init__(size)
        self.acks = 0
        self.out_bytes = 0

    def write(self, buf, n, timeout_ms=0):
        if buf[7] == codes.MSG_ACK:  # header(6) + array head, then the type
            self.acks += 1
        self.out_bytes += n


def test_data_path_allocates_nothing():
    import hashlib
    import os

    director = ed25519.SigningKey(bytes(range(32)))
    image = bytes((i * 7) & 0xFF for i in range(60 * 1024))
    sha = hashlib.sha256(image).digest()
    instr = messages.encode_instruction(
        "bms-1", "hw-1", "2.0.0", 2, len(image), sha, 1000, 2000, "app", 0
    )
    kid = hashlib.sha256(director.public).digest()[:8]
    begin = messages.begin(instr, [[kid, director.sign(instr)]], len(image), sha, 0, len(image))
    from binascii import hexlify

    # no tmp_path on this side: a random name keeps parallel runs apart
    path = "/tmp/otalink-zero-alloc-" + hexlify(os.urandom(6)).decode() + ".bin"
    g = geometry(dict(GEOM))
    try:
        bdev = NorFlash(path, g["size"], g["erase_size"], g["write_size"])
        Slots(bdev, g).boot()
        link = RingLink(16384)
        sess = Agent(Cfg(director.public, bytes(32)), link, bdev, g)
        link.ring.write(frame(begin))
        sess.poll(0)
        assert sess.state == RECEIVING and sess.errors_out == 0
        chunk = 1024
        frames = [
            frame(messages.data(o, image[o : o + chunk])) for o in range(0, len(image), chunk)
        ]
        # warm-up: the first frames fill the caches (views per payload length, offset widths)
        for f in frames[:4]:
            link.ring.write(f)
            sess.poll(0)
        done = 4
        locked_frames = 0
        while done < len(frames):
            batch = frames[done : done + 8]
            for f in batch:
                link.ring.write(f)
            micropython.heap_lock()
            try:
                while link.ring.any():
                    sess.poll(0)
            finally:
                micropython.heap_unlock()
            locked_frames += len(batch)
            done += len(batch)
            assert sess.errors_out == 0, (done, sess.errors_out)
        assert locked_frames >= 50, locked_frames
        assert sess.xfer.rx.expected == len(image)
        assert link.acks == 1 + len(frames)  # one ACK per DATA frame (+ BEGIN's)
    finally:
        try:
            os.remove(path)
        except OSError:
            pass
