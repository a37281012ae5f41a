# An agent at rest (device/engine.py, docs/device.md "Agent"): once the line is quiet and
# nothing is in flight, the engine (its methods, the frame reader and its max_payload buffer,
# the reply writer) leaves the heap; the next byte on the line wakes it, and the replies are
# exactly what an agent that never rested gives.
# mpy-heapsize: 256k
import gc
import os
import sys
import time

from mp_session_cfg import GEOM, Cfg, RingLink
from otalink.device import ed25519
from otalink.device.agent import Agent
from otalink.device.flash import NorFlash, geometry
from otalink.device.slots import Slots
from otalink.protocol import codes, messages
from otalink.protocol.frame import FrameParser, frame

# (framing.py stays loaded here: the test's own FrameParser is built on it)
ENGINE = ("otalink.device.engine",)


class Bench:
    def __init__(self):
        self.path = "/tmp/otalink-rest-" + os.urandom(4).hex() + ".bin"
        g = geometry(dict(GEOM))
        bdev = NorFlash(self.path, g["size"], g["erase_size"], g["write_size"])
        Slots(bdev, g).boot()
        sys.modules.pop("otalink.device.slots", None)
        self.link = RingLink(8192)
        director = ed25519.SigningKey(bytes(range(32)))
        self.agent = Agent(Cfg(director.public, bytes(32)), self.link, bdev, g)
        self.replies = FrameParser(4096)

    def ask(self, payload):
        self.link.out = bytearray()
        self.link.ring.write(frame(payload))
        self.agent.poll(0)
        out = self.replies.feed_all(self.link.out)
        assert len(out) == 1, out
        return messages.parse(out[0], True)

    def half_frame(self):
        # the first 5 bytes of a STATUS_REQ frame on the line, read by the agent; the frame
        self.link.out = bytearray()
        f = frame(messages.status_req(os.urandom(16)))
        self.link.ring.write(f[:5])
        self.agent.poll(0)
        assert self.agent.parser is not None and self.agent.parser.buffered() == 5
        return f

    def status_answered(self):
        # the agent's replies since the last ask: exactly one, a STATUS
        out = self.replies.feed_all(self.link.out)
        assert len(out) == 1 and out[0][1] == codes.MSG_STATUS, out

    def quiet(self):
        # the line stayed quiet past the rest time: the next tick rests the agent
        a = self.agent
        a.last_rx = time.ticks_add(time.ticks_ms(), -10000)
        a.tick()

    def close(self):
        os.remove(self.path)


def loaded():
    return [m for m in ENGINE if m in sys.modules]


def test_a_quiet_agent_rests_and_wakes_on_the_next_frame():
    b = Bench()
    try:
        a = b.agent
        assert a.parser is None and loaded() == []  # made at rest: nothing came yet
        before = set(sys.modules)
        nonce = os.urandom(16)
        r = b.ask(messages.hello(nonce, 1024))
        assert r[0] == codes.MSG_INFO, r
        assert a.parser is not None and loaded() == list(ENGINE)
        b.quiet()
        assert a.parser is None and a.out is None and loaded() == [], loaded()
        assert not hasattr(a, "_next") and not hasattr(a, "_error")
        # nothing the engine loaded stays (drive.py: the loop without an application), above
        # all no module holding the old ProtocolError class: the next wake imports a new one
        extra = [m for m in sys.modules if m not in before and m != "otalink.device.drive"]
        assert extra == [] and "otalink.protocol.errors" not in sys.modules, extra
        # the next frame wakes it: the same reply as before, the negotiated payload kept
        r2 = b.ask(messages.hello(nonce, 1024))
        assert r2[0] == codes.MSG_INFO and r2[1:4] == r[1:4], (r, r2)
        r = b.ask(messages.data(0, b"x"))
        assert r[:2] == [codes.MSG_ERROR, codes.E_BAD_STATE], r
        # a malformed request after a rest: the codec raises the ProtocolError the new engine
        # catches (one class again), answered with its code, not E_INTERNAL
        b.quiet()
        r = b.ask(b"\x81\x01")  # [HELLO] without its fields
        assert r[:2] == [codes.MSG_ERROR, codes.E_BAD_MESSAGE], r
    finally:
        b.close()


def test_rest_returns_the_engine_heap():
    b = Bench()
    try:
        a = b.agent
        # a first request interns its names for good (and the report caches the ECU key)
        assert b.ask(messages.status_req(os.urandom(16)))[0] == codes.MSG_STATUS
        b.quiet()
        gc.collect()
        gc.collect()
        before = gc.mem_alloc()
        for _ in range(3):
            assert b.ask(messages.status_req(os.urandom(16)))[0] == codes.MSG_STATUS
            b.quiet()
        gc.collect()
        gc.collect()  # (the first pass may still see a stale pointer on the C stack)
        after = gc.mem_alloc()
        # awake, the engine's code and a 2 KB reader buffer are live (several KB): at rest
        # nothing of it stays, however often it woke
        assert after - before < 512, (before, after)
        assert a.parser is None
    finally:
        b.close()


def test_no_rest_with_a_partial_frame_buffered():
    b = Bench()
    try:
        a = b.agent
        f = b.half_frame()
        b.quiet()
        assert a.parser is not None and a.parser.buffered() == 5  # the half frame is kept
        b.link.ring.write(f[5:])
        a.poll(0)
        b.status_answered()
    finally:
        b.close()


def test_a_partial_frame_silent_past_the_rest_time_goes_with_the_reader():
    # Line noise that looks like a frame's start (or a host that died mid-frame) kept the agent
    # awake for good: rest waited for a buffered partial frame that never completes. A partial
    # frame whose line has been silent for the rest time now goes with the reader (an
    # inter-byte timeout), and the next whole frame is answered as ever.
    b = Bench()
    try:
        a = b.agent
        b.half_frame()
        b.quiet()
        a.rx_at = time.ticks_add(time.ticks_ms(), -10000)  # and no byte since, that long
        a.tick()
        assert a.parser is None and loaded() == [], loaded()  # at rest
        assert b.ask(messages.status_req(os.urandom(16)))[0] == codes.MSG_STATUS
    finally:
        b.close()


def test_a_wake_without_room_leaves_the_agent_at_rest_and_answers_later():
    # An application holding the heap when a frame arrives: the engine's reader cannot be
    # made. The MemoryError used to leave agent.wake() and end the line loop (the loader's
    # process without an application; the line task beside one, then the watchdog's reset).
    # Now the agent stays at rest (nothing of the engine half-made), the frame waits in the
    # line's buffer, and it is answered once there is room.
    from otalink.protocol import framing

    def no_room(*args):
        raise MemoryError("memory allocation failed, allocating 2058 bytes")

    b = Bench()
    reader = framing.FrameReader
    try:
        a = b.agent
        framing.FrameReader = no_room
        b.link.out = bytearray()
        b.link.ring.write(frame(messages.status_req(os.urandom(16))))
        assert a.poll(0) == 0  # (it used to raise here)
        assert a.parser is None and a.out is None and loaded() == [], loaded()
        assert not hasattr(a, "_next") and not hasattr(a, "_error")
        assert b.link.out == b"" and b.link.ring.any() > 0  # unanswered, still on the line
        framing.FrameReader = reader
        a.poll(0)
        b.status_answered()
    finally:
        framing.FrameReader = reader
        b.close()


def test_a_fault_is_recorded_at_rest_without_the_engine():
    # the supervisor records the application's fault (after a MemoryError, say) on an agent at
    # rest: the state record is written, the engine is not loaded for it
    b = Bench()
    try:
        a = b.agent
        assert b.ask(messages.hello(os.urandom(16), 1024))[0] == codes.MSG_INFO
        b.quiet()
        assert a.parser is None and loaded() == []
        a.note_fault(codes.E_APP_MEMORY)
        assert a.parser is None and loaded() == [], loaded()
        assert Slots(a.bdev, a.geom, None, None, False).fault == codes.E_APP_MEMORY
        r = b.ask(messages.status_req(os.urandom(16)))  # and it answers on
        assert r[0] == codes.MSG_STATUS, r
    finally:
        b.close()
