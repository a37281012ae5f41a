# The ECU agent: the device side of the otalink protocol as one asyncio component of the ECU
# firmware, beside the application (docs/device.md "Agent", "Writing an ECU application";
# docs/adr/0007-ecu-component.md). The loader (device/loader.py) imports it from the running
# slot (or its own recovery copy), calls make(boot) and runs agent.run() next to the
# application's main(agent) and its supervisor.
#
#   make(boot) -> Agent                  the loader's entry (it reads the ECU config itself)
#   Agent(cfg, link, bdev, geom, boot=None, parser=None)
#       bdev, geom: the flash device and its geometry; the state is read into a Slots made per
#       request (an idle agent holds no storage code or state)
#   await agent.run()      the line task      agent.tick()   its timers (the supervisor's step)
#   agent.poll(timeout_ms) one synchronous step without asyncio (tests, benches: drive.py)
#
# The application contract (what main(agent) uses; docs/device.md):
#   .version .trial .boot_state .last_error .fault .safe_ms
#   .on_offer(offer) -> None | reason | (reason, retry_after_s)     BEGIN of a verified update
#   .on_activate() -> awaitable (or value): outputs safe; False or safe_ms elapsed = refused
#   .on_message(chan, data) -> reply bytes | None                   host requests (APP)
#   .healthy(ok=True)   .alive()   .send(chan, data) -> bool
# The loader's interface (stable: the loader is immutable): make(boot), .run(), .tick(), .exit
# (None | RUN_STOP | RUN_RESET), .progress, .parked, .alive(), .alive_at, .trial, .app_state,
# .healthy(ok), .note_fault(code), .link, .memtrace, .on_slice (set by the loader: called
# between a request's slices in poll()); module attribute _mem (the bench's hook).
#
# Idle residency (the unix port keeps loaded code in the heap): this module, hotpath.py (frames),
# the frame reader (max_payload: a frame of any request is answered in every state), a 64-byte
# reply writer, the Slots
# state (slots.py, flash.py's Region; no buffers). Loaded when used and dropped again: the
# storage operations (slotops, decide), the report builder, the codec (BEGIN, PROBE and payloads
# only the full parser judges), the crypto (sliced ed25519), the command checks, the rare state
# changes (ops.py). The application channel (port.py) stays once the application used it. The
# transfer machinery (session.py, datapath.py, slotwrite.py: DATA path, window, ACK writer, the
# Slots ring and program buffer, the max_payload frame reader, the deflate decoder) is loaded at
# BEGIN / PROBE and dropped after END, ABORT, or when an interrupted transfer stayed idle for
# keep_ms. Nothing blocks the loop for long: requests that take time (signing, verifying,
# erasing, the read-back hash) are generators whose slices the line task runs with an await
# between them.
import gc
import os
import sys
import time

from otalink.protocol.errors import ProtocolError
from otalink.protocol.hotpath import FrameReader, FrameWriter, put_head

try:
    from micropython import const
except ImportError:  # CPython (tooling only)

    def const(x):
        return x


# protocol/codes.py values this module uses, as private consts (tests/protocol/test_wire.py)
_MSG_ERROR = const(0xF)
_MSG_RESULT = const(0x9)
_T_IDLE_MS = const(60000)
_T_REPLY_MS = const(2000)

IDLE = const(0)
RECEIVING = const(1)
RUN_STOP = const(0)
RUN_RESET = const(1)
TIMEOUT = const(-1)  # what a request's generator receives when its awaitable timed out

_OUT_PAYLOAD = const(64)  # ACK / RESULT / ERROR / PROGRESS (<= 26 bytes)
_MAX_READS = const(64)  # reads per frame search: a line that never goes quiet still yields
_NONCE_LEN = const(16)

# (package, modules) imported on demand and forgotten afterwards (the idle residency above)
CODEC = ("otalink.protocol", ("wire", "cbor"))
CRYPTO = ("otalink.device", ("auth", "ed25519"))
CMD = ("otalink.protocol", ("command",))
COLD = ("otalink.device", ("commands", "report", "ops", "begin", "slotbegin"))
SERVE = ("otalink.device", ("serve",))
SMALL = ("otalink.protocol", ("small",))
STORE = ("otalink.device", ("slots", "store", "flash", "flashcfg", "slotops", "decide"))
XFER = ("otalink.device", ("session", "slotwrite", "slotend"))  # the transfer (unload)
PATH = ("otalink.protocol", ("datapath",))

# The bench's memory hook (config "memtrace": device/memhook.py, set by the loader): _drop calls
# it just before a lazy group goes, with what the request built still live. None otherwise.
_mem = None

try:
    from otalink.device.version import VERSION
except ImportError:
    VERSION = ""


def _lazy(name):
    # A cold-path module, imported right after a collection: first-fit allocation then puts its
    # code in the lowest free space instead of above the garbage the last request left behind.
    gc.collect()
    return __import__(name, None, None, ("*",))  # ("*",): the leaf module


def _drop(group):
    # Forget the modules so the GC can free their code; the next use imports them again.
    pkg_name, names = group
    if _mem is not None:
        _mem("drop " + names[0])  # before they go: what the request built is still live
    pkg = sys.modules.get(pkg_name)
    for name in names:
        sys.modules.pop(pkg_name + "." + name, None)
        if pkg is not None and name in pkg.__dict__:
            delattr(pkg, name)


_drop(("otalink.device", ("version",)))


def _drop_lazy(a=None):
    _drop(CODEC)
    _drop(CRYPTO)
    _drop(CMD)
    _drop(COLD)
    if a is not None and a.xfer is None:
        _drop(XFER)  # (a BEGIN that failed after loading the transfer's modules)
        _drop(PATH)


def _ops():
    # the rare state changes (healthy, note_fault, an unexpected error), loaded for the call
    return _lazy("otalink.device.ops")


class Agent:
    def __init__(self, cfg, link, bdev, geom, boot=None, parser=None):
        self.cfg = cfg
        self.link = link
        self.bdev = bdev
        self.geom = geom
        n = cfg.max_payload
        self.max_payload = n
        self.payload = n  # negotiated in HELLO
        self.window = cfg.window
        self.parser = parser or FrameReader(n)
        self.out = FrameWriter(_OUT_PAYLOAD)
        self.m = [0, 0, 0, 0]  # parse_small / parse_app output, reused
        self.state = IDLE
        self.instr = None  # exact BEGIN instruction bytes of the transfer session
        self.params = None  # its (image_len, sha256, compression, wire_len)
        self.ins = None  # and what its checks returned
        self.wire_len = 0
        self.xfer = None  # the transfer machinery (session.Transfer) while loaded
        self.port = None  # the application channel (port.Port) once used
        self.busy = False  # a request is being handled (in slices)
        self.t0 = self.last_rx = time.ticks_ms()
        self.exit = None  # RUN_STOP / RUN_RESET: the loader ends the boot
        self.reset_requested = False
        # The nonce the next signed command must carry: random at start-up, replaced after every
        # accepted command (a command is good once), reported in INFO / STATUS / RESULT.
        self.cmd_nonce = os.urandom(_NONCE_LEN)
        self.pub = None  # the ECU's public key (computed once, at the first report)
        self.cur = None  # payload being handled: ERROR names its type (_error)
        self.memtrace = None  # [peak] when the bench's memory hook is on
        self.frames_in = 0
        self.errors_out = 0
        self.got = 0  # bytes the last frame search read
        # the application contract
        self.version = VERSION
        b = boot
        self.fmt = b.fmt if b else 0  # bundle format of the running slot (0: none)
        self.trial = b.trial if b else False
        self.boot_state = b.boot_state if b else 0
        self.last_error = b.last_error if b else 0
        self.fault = b.fault if b else 0
        self.safe_ms = getattr(cfg, "safe_ms", 2000)
        self.idle_ms = getattr(cfg, "idle_ms", None) or _T_IDLE_MS
        self.keep_ms = getattr(cfg, "keep_ms", _T_IDLE_MS)
        self.run_ms = getattr(cfg, "run_ms", -1)
        self.on_offer = None
        self.on_activate = None
        self.on_message = None
        self.app_state = 0  # codes.APP_NONE
        self.activated = False  # an ACTIVATE brought the outputs safe: REBOOT does not ask again
        # the loader's view
        self.progress = 0  # bumped by the line task at every step
        self.parked = False  # the line task waits for the line (healthy by construction)
        self.alive_at = None  # ticks of the application's last alive()
        self.on_slice = None  # the loader's hook between a request's slices (drive.py)

    # ---- the application contract -------------------------------------------------------------
    def healthy(self, ok=True):
        # the application proved itself (or failed to): ops.py
        _ops().healthy(self, ok)
        _drop(COLD)

    def alive(self):
        # the application's heartbeat: once called, the supervisor expects it within alive_ms
        self.alive_at = time.ticks_ms()

    def send(self, chan, data):
        # an ECU-initiated event on the application channel (id 0); False when the outbox is
        # full or the message is out of bounds (nothing waits: the caller decides)
        return self._port().send(chan, data)

    def note_fault(self, code):
        # the loader's supervisor records a fault of the running image (persisted)
        _ops().note_fault(self, code)
        _drop(COLD)

    def _port(self):
        p = self.port
        if p is None:
            p = self.port = _lazy("otalink.device.port").Port(self)
        return p

    # ---- storage, per request -----------------------------------------------------------------
    def _slots(self):
        # the live transfer's Slots, or one made for this request from the flash (dropped again
        # with its modules by _done): an idle agent holds no storage code or state
        x = self.xfer
        if x is not None and not x.dry:
            return x.slots
        return _lazy("otalink.device.slots").Slots(self.bdev, self.geom, None, None, False)

    def _done(self, s):
        x = self.xfer
        if x is None or s is not x.slots:
            _drop(STORE)

    def _op(self, name, *a):
        # one Slots operation (the operation's module is loaded for it and dropped again)
        s = self._slots()
        try:
            return getattr(s, name)(*a)
        finally:
            self._done(s)

    def _code(self, name, *a):
        try:
            return self._op(name, *a)
        except ProtocolError as e:
            return e.code

    def _unload(self):
        # the transfer machinery goes (session.py)
        if self.xfer is not None:
            self.xfer.unload()

    def _reset(self):
        self.reset_requested = True
        self.exit = RUN_RESET

    # ---- output -------------------------------------------------------------------------------
    def _send_view(self, view):
        try:
            self.link.write(view, len(view), _T_REPLY_MS)
        except OSError:
            pass  # dead line: the host re-asks; nothing here may block on it

    def _small(self, t, a, b, c, nonce=None):
        # ERROR / PROGRESS: [t, a, b, c]; RESULT: [t, a, b, c, nonce], into the reply writer
        w = self.out
        buf = w.buf
        p = w.PAYLOAD
        buf[p] = 0x84 if nonce is None else 0x85
        buf[p + 1] = t
        p = put_head(0, a, buf, p + 2)
        p = put_head(0, b, buf, p)
        p = put_head(0, c, buf, p)
        if nonce is not None:
            buf[p] = 0x40 | _NONCE_LEN
            p += 1
            buf[p : p + _NONCE_LEN] = nonce
            p += _NONCE_LEN
        self._send_view(w.seal(p))

    def _error(self, code, detail=0):
        # The request type answered: the payload's array head of 1..16 items, then a one-byte
        # uint; 0 when the payload does not show one.
        self.errors_out += 1
        p = self.cur
        t = p[1] if p is not None and len(p) > 1 and 0x81 <= p[0] <= 0x90 and p[1] < 24 else 0
        self._small(_MSG_ERROR, code, detail & 0xFFFFFFFF, t)

    def _result(self, req, code, detail=0):
        self._small(_MSG_RESULT, req, code, detail & 0xFFFFFFFF, self.cmd_nonce)

    def _internal(self, e):
        # a bug (or MemoryError) answered E_INTERNAL: ops.py
        _ops().internal(self, e)
        _drop(COLD)

    # ---- input --------------------------------------------------------------------------------
    def _next(self):
        # The next complete frame's payload, reading what the line holds (never blocks); None
        # when no frame is complete. self.got: bytes read meanwhile.
        parser = self.parser
        got = 0
        p = parser.next()
        reads = 0
        while p is None and reads < _MAX_READS:
            reads += 1
            k = parser.readinto_from(self.link)
            if not k:
                break
            got += k
            p = parser.next()
        self.got = got
        return p

    def poll(self, timeout_ms=100):
        # one synchronous step without asyncio (the loader without an application, tests,
        # benches): device/drive.py, loaded once
        d = sys.modules.get("otalink.device.drive") or _lazy("otalink.device.drive")
        return d.poll(self, timeout_ms)

    def _handle(self, p):
        # One frame. Returns None when handled, or a generator: a request that runs in slices.
        # DATA of a live transfer takes the hot path (allocates nothing); every other message is
        # served by serve.py, loaded for it and dropped again.
        self.frames_in += 1
        self.cur = p
        self.last_rx = time.ticks_ms()
        x = self.xfer
        if x is not None:
            if x.dv.parse(p):
                x.data()
                return None
            g = x.end_p(p)
            if g is not None:
                return g
        try:
            return _lazy("otalink.device.serve").handle(self, p)
        except ProtocolError as e:  # (device/errors.DeviceError is this class too)
            self._error(e.code, e.detail)
        except Exception as e:  # a bug (or MemoryError) must not take the line down
            self._internal(e)
        finally:
            _drop(SERVE)
            _drop(SMALL)
        return None

    def _trace(self, p):
        mt = self.memtrace
        if mt is not None:
            gc.collect()
            a = gc.mem_alloc()
            if a > mt[0]:
                mt[0] = a
                sys.stderr.write("otalink-mem live=%d after type %d\n" % (a, p[1]))

    def tick(self):
        # the timers (the supervisor calls this every step; poll() after each step): an idle
        # transfer falls back to IDLE, keep_ms later its machinery goes; run_ms ends the boot
        now = time.ticks_ms()
        quiet = time.ticks_diff(now, self.last_rx)
        idle = self.idle_ms
        if self.busy:
            pass  # a request in slices (an erase, a read-back): quiet counts from its answer
        elif self.state == RECEIVING and quiet > idle:
            self.state = IDLE  # the transfer stays loaded for a resume from RAM
        elif self.xfer is not None and self.state == IDLE:
            if quiet > idle + self.keep_ms:
                self._unload()  # a resume now starts at the last durable checkpoint
        rm = self.run_ms
        if rm >= 0 and time.ticks_diff(now, self.t0) >= rm and not self.busy:
            self.exit = RUN_STOP

    # ---- the line task ------------------------------------------------------------------------
    def run(self):
        # the line task beside an application (asyncio): device/aloop.py, loaded for it
        return _lazy("otalink.device.aloop").run(self)


def make(boot):
    # The loader's entry: the agent of this slot (or the recovery agent) over the loader's flash
    # device; the ECU config is read here (an agent version may read keys the loader never
    # knew), then start.py and config.py leave the heap again.
    from otalink.device import start

    got = start.settings(boot.path)
    _drop(("otalink.device", ("start", "config")))
    if got is None:
        raise ValueError("config")
    cfg, line, geom = got
    from otalink.device.link import open_link

    return Agent(cfg, open_link(line), boot.bdev, geom, boot)
