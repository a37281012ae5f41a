# A request that runs in stages (BEGIN: the checks and the signature verification, then the
# transfer's load; device/drive.py finish() and device/aloop.py drive() run a stage's generator,
# then the generator it returns): a stage that has finished must leave the heap before the next
# one allocates. A finished generator keeps its frame (its locals, its module's code) while
# anything refers to it; the runners' callers kept the first stage's generator in a local
# through the second stage and until the next frame, so BEGIN's verification (begin.py and what
# it built, ~6 KB) stayed live under the Slots, the ring and the decoder's room.
# mpy-heapsize: 256k
import gc
import os

from mp_session_cfg import GEOM, Cfg, RingLink
from otalink.device import ed25519
from otalink.device.agent import Agent
from otalink.device.flash import NorFlash, geometry
from otalink.device.slots import Slots
from otalink.protocol import messages
from otalink.protocol.frame import frame

BIG = 16384  # what the first stage holds in a local when it ends


class StreamLink(RingLink):
    def stream(self):
        return self.ring  # (aloop.run asks for it; the test's frame is read before any wait)


def _agent():
    path = "/tmp/otalink-stage-" + os.urandom(4).hex() + ".bin"
    g = geometry(dict(GEOM))
    bdev = NorFlash(path, g["size"], g["erase_size"], g["write_size"])
    Slots(bdev, g).boot()
    director = ed25519.SigningKey(bytes(range(32)))
    link = StreamLink(8192)
    a = Agent(Cfg(director.public, bytes(32)), link, bdev, g)
    link.ring.write(frame(messages.hello(os.urandom(16), 1024)))
    return a, path


def _stages(a, seen):
    # the handler of the test's frame: two stages, as BEGIN's
    def second():
        gc.collect()
        seen.append(gc.mem_alloc())  # the first stage is over: its local must be gone
        a.exit = 0  # (ends aloop.run after this frame)
        yield

    def first():
        big = bytearray(BIG)
        big[0] = 1
        gc.collect()
        seen.append(gc.mem_alloc())
        yield
        return second()

    return lambda p: first()


def _check(seen):
    assert len(seen) == 2, seen
    freed = seen[0] - seen[1]
    assert freed >= BIG - 1024, ("the first stage stayed live: bytes freed", freed, BIG)


def test_the_first_stage_leaves_the_heap_before_the_second_runs_poll():
    a, path = _agent()
    try:
        seen = []
        assert a.wake()
        a._handle = _stages(a, seen)  # (instance attribute: before the engine's method)
        a.poll(0)
        _check(seen)
    finally:
        os.remove(path)


def test_the_first_stage_leaves_the_heap_before_the_second_runs_line_task():
    import sys

    if ".frozen" not in sys.path:
        sys.path.append(".frozen")  # asyncio is frozen into the port (as the loader finds it)
    import asyncio

    a, path = _agent()
    try:
        seen = []
        assert a.wake()
        a._handle = _stages(a, seen)
        asyncio.run(a.run())
        _check(seen)
    finally:
        os.remove(path)
