# An idle agent keeps only its idle modules loaded (device/agent.py, "Idle residency"): the
# request dispatch, the CBOR codec, the message parsers, the report builder, the crypto, the
# storage (state, operations) are imported per request and gone again once the reply is out; the
# transfer machinery (session, slotwrite, datapath, the Slots) is loaded from BEGIN to END only;
# the replies stay exactly what the protocol says.
# mpy-heapsize: 512k
import gc
import sys

from mp_session_cfg import GEOM, Cfg, RingLink
from otalink.device import ed25519
from otalink.device.agent import Agent
from otalink.device.flash import NorFlash, geometry
from otalink.device.slots import Slots
from otalink.protocol import codes, messages
from otalink.protocol.frame import FrameParser, frame

# agent._IDLE / _RECEIVING (private const()s there: no module attribute under MicroPython)
IDLE = 0
RECEIVING = 1

LAZY = (
    "otalink.protocol.wire",
    "otalink.protocol.cbor",
    "otalink.protocol.messages",
    "otalink.protocol.small",
    "otalink.protocol.command",
    "otalink.device.auth",
    "otalink.device.ed25519",
    "otalink.device.ed25519v",
    "otalink.device.wake",
    "otalink.device.report",
    "otalink.device.commands",
    "otalink.device.serve",
    "otalink.device.begin",
    "otalink.device.slotbegin",
    "otalink.device.slotend",
    "otalink.device.slotops",
    "otalink.device.decide",
    "otalink.device.store",
    "otalink.device.flashcfg",
    "otalink.device.ops",
)
# loaded from BEGIN to END only (and never while idle)
TRANSFER = (
    "otalink.device.session",
    "otalink.device.slotwrite",
    "otalink.device.slots",
    "otalink.device.flash",
    "otalink.protocol.datapath",
)


def loaded(receiving=False):
    return [m for m in LAZY + ((), TRANSFER)[not receiving] if m in sys.modules]


def test_codec_and_crypto_leave_after_each_request():
    import hashlib
    import os
    from binascii import hexlify

    director = ed25519.SigningKey(bytes(range(32)))
    image = bytes((i * 5) & 0xFF for i in range(6000))
    sha = hashlib.sha256(image).digest()
    instr = messages.encode_instruction(
        "bms-1", "hw-1", "2.0.0", 2, len(image), sha, 1000, 2000, "app", 0
    )
    kid = hashlib.sha256(director.public).digest()[:8]
    begin = messages.begin(instr, [[kid, director.sign(instr)]], len(image), sha, 0, len(image))
    hello = messages.hello(bytes(range(16)), 4096)
    status = messages.status_req(bytes(16))
    data = [messages.data(o, image[o : o + 1024]) for o in range(0, len(image), 1024)]
    end = messages.end(len(image))
    bad_end = bytes([0x83, codes.MSG_END, 1, 2])  # wrong arity: only the full parser rejects it
    path = "/tmp/otalink-lazy-" + hexlify(os.urandom(6)).decode() + ".bin"
    g = geometry(dict(GEOM))
    # the test itself used the full layer to build its frames: forget it, as the agent does
    try:
        bdev = NorFlash(path, g["size"], g["erase_size"], g["write_size"])
        Slots(bdev, g).boot()
        for m in LAZY + TRANSFER:
            sys.modules.pop(m, None)
        link = RingLink(16384)
        sess = Agent(Cfg(director.public, bytes(32)), link, bdev, g)
        replies = FrameParser(4096)

        def ask(payload):
            link.out = bytearray()
            link.ring.write(frame(payload))
            sess.poll(0)
            gc.collect()
            assert loaded(sess.state == RECEIVING) == [], loaded(sess.state == RECEIVING)
            out = replies.feed_all(link.out)
            assert len(out) >= 1, out
            return out[-1]

        # a signature (INFO, STATUS) loads no verification code (ed25519v.py): BEGIN's does
        verifying = []
        sess.on_slice = lambda: verifying.append("otalink.device.ed25519v" in sys.modules)
        assert ask(hello)[1] == codes.MSG_INFO
        assert ask(status)[1] == codes.MSG_STATUS
        assert verifying and True not in verifying, verifying
        # awake, the agent holds the engine's methods, not the code that wakes and strips it
        # (wake.py: loaded for those calls only)
        engine = sys.modules["otalink.device.engine"]
        assert not hasattr(engine, "wake") and not hasattr(engine, "strip")
        del verifying[:]
        r = ask(bad_end)
        assert r[1] == codes.MSG_ERROR and r[2] == codes.E_BAD_MESSAGE, bytes(r)
        assert ask(begin)[1] == codes.MSG_ACK
        assert sess.state == RECEIVING
        assert True in verifying, verifying
        sess.on_slice = None
        for d in data:
            assert ask(d)[1] == codes.MSG_ACK
        r = ask(end)
        assert r[1] == codes.MSG_RESULT and r[2] == codes.MSG_END and r[3] == codes.OK, bytes(r)
        assert sess.state == IDLE and sess.errors_out == 1
    finally:
        try:
            os.remove(path)
        except OSError:
            pass
