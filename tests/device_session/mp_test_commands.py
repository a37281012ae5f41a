# Signed commands (docs/protocol.md 5.1) through the real Agent and Slots under MicroPython,
# without a pty: frames in through a RingIO, replies out of a buffer. For each of ACTIVATE,
# REBOOT, CONFIRM, REVERT, ABORT: every forged, misdirected, stale or replayed form is refused
# with its own code and changes nothing (slot states, transfer, session state, the nonce); the
# properly signed one is accepted once, spends the nonce and reports the new one in its RESULT.
# mpy-heapsize: 512k
import hashlib
import os
from binascii import hexlify

from mp_session_cfg import GEOM, Cfg, RingLink
from otalink.device import ed25519
from otalink.device.agent import Agent
from otalink.device.flash import NorFlash, geometry
from otalink.protocol import cbor, codes, messages
from otalink.protocol.frame import FrameParser, frame

# agent._IDLE / _RECEIVING (private const()s there: no module attribute under MicroPython)
IDLE = 0
RECEIVING = 1

ECU = "bms-1"
CMD_SEED = bytes(range(32, 64))
DIRECTOR_SEED = bytes(range(32))
COMMANDS = (
    codes.MSG_ACTIVATE,
    codes.MSG_REBOOT,
    codes.MSG_CONFIRM,
    codes.MSG_REVERT,
    codes.MSG_ABORT,
)


def _kid(pub):
    return hashlib.sha256(pub).digest()[:8]


def signed(t, nonce, seed=CMD_SEED, ecu=ECU, inner=None):
    cmd = cbor.dumps([1, t if inner is None else inner, ecu, nonce])
    k = ed25519.SigningKey(seed)
    return messages.command(t, cmd, _kid(k.public), k.sign(cmd))


class Rig:
    def __init__(self, command_keys):
        self.path = "/tmp/otalink-cmd-" + hexlify(os.urandom(6)).decode() + ".bin"
        g = geometry(dict(GEOM))
        from otalink.device.slots import Slots

        bdev = NorFlash(self.path, g["size"], g["erase_size"], g["write_size"])
        Slots(bdev, g).boot()
        self.link = RingLink(16384)
        self.director = ed25519.SigningKey(DIRECTOR_SEED)
        cfg = Cfg(self.director.public, bytes(32))
        cfg.command_keys = command_keys
        self.sess = Agent(cfg, self.link, bdev, g)
        self.replies = FrameParser(4096)

    @property
    def slots(self):
        # the agent's view of the state: its live transfer's Slots, else one read from flash
        # (engine.py's method: an agent at rest has none, so wake it)
        self.sess.wake()
        return self.sess._slots()

    def close(self):
        try:
            os.remove(self.path)
        except OSError:
            pass

    def ask(self, payload):
        self.link.out = bytearray()
        self.link.ring.write(frame(payload))
        self.sess.poll(0)
        out = self.replies.feed_all(self.link.out)
        assert len(out) >= 1, out
        return messages.parse(out[-1], True)

    def snapshot(self):
        s = self.slots
        return (repr(s.report()), repr(s.transfer()), self.sess.state, bytes(self.sess.cmd_nonce))

    def verified_image(self, version="2.0.0", rc=2):
        # BEGIN / DATA / END: a VERIFIED inactive slot
        image = bytes((i * 7) & 0xFF for i in range(5000))
        sha = hashlib.sha256(image).digest()
        instr = messages.encode_instruction(ECU, "hw-1", version, rc, len(image), sha, 1000, 2000,
                                            "app", 0)  # fmt: skip
        sig = [[_kid(self.director.public), self.director.sign(instr)]]
        assert self.ask(messages.begin(instr, sig, len(image), sha, 0, len(image)))[0] == 5
        for o in range(0, len(image), 1024):
            assert self.ask(messages.data(o, image[o : o + 1024]))[0] == codes.MSG_ACK
        r = self.ask(messages.end(len(image)))
        assert r[:3] == [codes.MSG_RESULT, codes.MSG_END, codes.OK], r
        return image


def refused(rig, payload, code, detail, t):
    before = rig.snapshot()
    r = rig.ask(payload)
    assert r == [codes.MSG_ERROR, code, detail, t], (r, code, detail, t)
    assert rig.snapshot() == before, (t, code, before, rig.snapshot())


def forged_forms(rig, t):
    n = bytes(rig.sess.cmd_nonce)
    bad = bytearray(signed(t, n))
    bad[-5] ^= 0x10  # a bit of the signature
    wrong_t = COMMANDS[(COMMANDS.index(t) + 1) % len(COMMANDS)]
    stale = bytes(b ^ 0xFF for b in n)
    cmd3 = cbor.dumps([1, t, ECU])  # signed, but not the layout
    k = ed25519.SigningKey(CMD_SEED)
    not_layout = messages.command(t, cmd3, _kid(k.public), k.sign(cmd3))
    return [
        (cbor.dumps([t]), codes.E_CMD_AUTH, 0),  # version 1: unsigned
        (cbor.dumps([t, 0]), codes.E_CMD_AUTH, 0),
        (signed(t, n, seed=bytes(range(64, 96))), codes.E_CMD_AUTH, 1),  # an unknown key
        (bytes(bad), codes.E_CMD_AUTH, 2),
        (signed(t, n, ecu="bms-2"), codes.E_CMD_TARGET, 2),
        (signed(t, n, inner=wrong_t), codes.E_CMD_TARGET, 1),
        (signed(t, stale), codes.E_CMD_REPLAY, 0),
        (not_layout, codes.E_BAD_MESSAGE, 0xFF),
    ]


def _accept(rig, t, code):
    n0 = bytes(rig.sess.cmd_nonce)
    good = signed(t, n0)
    r = rig.ask(good)
    assert r[:3] == [codes.MSG_RESULT, t, code], r
    n1 = bytes(rig.sess.cmd_nonce)
    assert n1 != n0 and r[4] == n1, (n0, n1, r)
    # the same bytes again: refused, nothing changes
    refused(rig, good, codes.E_CMD_REPLAY, 0, t)
    return r


def test_every_command_refuses_forged_forms_and_accepts_the_signed_one():
    cmd_pub = ed25519.SigningKey(CMD_SEED).public
    rig = Rig([cmd_pub])
    try:
        rig.verified_image()
        # nonce reported in STATUS equals the session's, and it is what RESULT names
        st = rig.ask(messages.status_req(bytes(16)))
        assert messages.decode_report(st[1])[messages.R_CMD_NONCE] == bytes(rig.sess.cmd_nonce)
        for t in COMMANDS:
            for payload, code, detail in forged_forms(rig, t):
                refused(rig, payload, code, detail, t)
        # ACTIVATE: the verified slot becomes PENDING
        _accept(rig, codes.MSG_ACTIVATE, codes.OK)
        other = rig.slots.report()[3][1 - rig.slots.active]
        assert other[0] == codes.SLOT_PENDING, other
        # REVERT: the pending activation is cancelled
        _accept(rig, codes.MSG_REVERT, codes.OK)
        other = rig.slots.report()[3][1 - rig.slots.active]
        assert other[0] == codes.SLOT_REJECTED, other
        # CONFIRM: authentic, runs, and fails (nothing on trial): the nonce is still spent
        _accept(rig, codes.MSG_CONFIRM, codes.E_NO_IMAGE)
        # ABORT during a transfer: the transfer ends, the session is IDLE
        rig.verified_image("2.0.1", 3)
        _accept(rig, codes.MSG_ABORT, codes.OK)
        assert rig.slots.report()[3][1 - rig.slots.active][0] == codes.SLOT_EMPTY
        assert rig.sess.state == IDLE
        # REBOOT: RESULT first, then the reset is requested
        assert not rig.sess.reset_requested
        _accept(rig, codes.MSG_REBOOT, codes.OK)
        assert rig.sess.reset_requested
    finally:
        rig.close()


def test_a_command_while_receiving():
    cmd_pub = ed25519.SigningKey(CMD_SEED).public
    rig = Rig([cmd_pub])
    try:
        image = bytes(range(256)) * 40
        sha = hashlib.sha256(image).digest()
        instr = messages.encode_instruction(ECU, "hw-1", "2.0.0", 2, len(image), sha, 1000, 2000,
                                            "app", 0)  # fmt: skip
        sig = [[_kid(rig.director.public), rig.director.sign(instr)]]
        assert rig.ask(messages.begin(instr, sig, len(image), sha, 0, len(image)))[0] == 5
        assert rig.ask(messages.data(0, image[:1024]))[:2] == [codes.MSG_ACK, 1024]
        # forged ABORTs leave the transfer running exactly where it was
        for payload, code, detail in forged_forms(rig, codes.MSG_ABORT):
            refused(rig, payload, code, detail, codes.MSG_ABORT)
        assert rig.sess.state == RECEIVING
        assert rig.ask(messages.data(1024, image[1024:2048]))[:2] == [codes.MSG_ACK, 2048]
        # an authentic ACTIVATE while receiving runs and fails: E_BAD_STATE, nonce spent
        _accept(rig, codes.MSG_ACTIVATE, codes.E_BAD_STATE)
        assert rig.sess.state == RECEIVING
        assert rig.ask(messages.data(2048, image[2048:3072]))[:2] == [codes.MSG_ACK, 3072]
    finally:
        rig.close()


def test_without_command_keys_every_command_is_refused():
    rig = Rig([])
    try:
        for t in COMMANDS:
            refused(rig, signed(t, bytes(rig.sess.cmd_nonce)), codes.E_CMD_AUTH, 1, t)
    finally:
        rig.close()


def test_the_nonce_is_random_per_session():
    a = Rig([])
    b = Rig([])
    try:
        assert len(a.sess.cmd_nonce) == 16 and a.sess.cmd_nonce != b.sess.cmd_nonce
    finally:
        a.close()
        b.close()
