# The ECU agent: the device side of the otalink protocol as one asyncio component of the ECU
# firmware, beside the application (docs/device.md "Agent", "Writing an ECU application";
# docs/adr/0007-ecu-component.md). The loader (device/loader.py) imports it from the running
# slot (or its own recovery copy), calls make(boot) and runs agent.run() next to the
# application's main(agent) and its supervisor.
#
#   make(boot) -> Agent                  the loader's entry (it reads the ECU config itself)
#   Agent(cfg, link, bdev, geom, boot=None)     made at rest (wake() / tick() below)
#       bdev, geom: the flash device and its geometry; the state is read into a Slots made per
#       request (an idle agent holds no storage code or state)
#   await agent.run()      the line task      agent.tick()   its timers (the supervisor's step)
#   agent.poll(timeout_ms) one synchronous step without asyncio (tests, benches: drive.py)
#   agent.wake() -> bool   the engine loaded (engine.py, by wake.py; False: no room yet);
#                          tick() puts a quiet agent to rest
#
# The application contract (what main(agent) uses; docs/device.md):
#   .version .trial .boot_state .last_error .fault .safe_ms
#   .on_offer(offer) -> None | reason | (reason, retry_after_s)     BEGIN of a verified update
#   .on_activate() -> awaitable (or value): outputs safe; False or safe_ms elapsed = refused
#   .on_message(chan, data) -> reply bytes | None                   host requests (APP)
#   .healthy(ok=True)   .alive()   .send(chan, data) -> bool
# The loader's interface (stable: the loader is immutable): make(boot), .run(), .tick(), .exit
# (None | _RUN_STOP | _RUN_RESET), .progress, .parked, .alive(), .alive_at, .trial, .app_state,
# .healthy(ok), .note_fault(code), .link, .memtrace, .on_slice (set by the loader: called
# between a request's slices in poll()); module attribute _mem (the bench's hook).
#
# Awake and at rest (the unix port keeps loaded code in the heap): at rest the agent is this
# module's Agent (its state and the contracts above) and, beside an application, aloop.py's line
# task parked on the line and port.py with hotpath.py's frame writer for the application's
# events. The first byte on the line (or a call that needs it) wakes the engine (engine.py: the
# frame reader with its max_payload buffer, the reply writer, the methods every request calls);
# once the line has been quiet for _REST_MS with nothing in flight (no request in slices, no
# transfer loaded, no partial frame, no application request waiting) it leaves again (tick()).
# Awake, loaded per request and dropped again: the request dispatch (serve.py), the storage
# operations (slots, slotops, decide), the report builder, the codec (BEGIN, PROBE and payloads
# only the full parser judges), the crypto (sliced ed25519), the command checks, the rare state
# changes (ops.py). The transfer machinery (session.py, datapath.py, slotwrite.py: DATA path,
# window, ACK writer, the Slots ring and program buffer, the deflate decoder) is loaded at
# BEGIN / PROBE and dropped after END, ABORT, or when an interrupted transfer stayed idle for
# keep_ms. Nothing blocks the loop for long: requests that take time (signing, verifying,
# erasing, the read-back hash) are generators whose slices the line task runs with an await
# between them.
import gc
import os
import sys
import time

try:
    from micropython import const
except ImportError:  # CPython (tooling only)

    def const(x):
        return x


# protocol/codes.py values this module uses, as private consts (tests/protocol/test_wire.py)
_T_IDLE_MS = const(60000)
_REST_MS = const(500)  # quiet time after which an agent with nothing in flight rests

_IDLE = const(0)
_RECEIVING = const(1)
_RUN_STOP = const(0)
_RUN_RESET = const(1)
_TIMEOUT = const(-1)  # what a request's generator receives when its awaitable timed out

_NONCE_LEN = const(16)

# (package, modules) imported on demand and forgotten afterwards (the idle residency above): the
# shared groups in one table, passed to _drop() by index (a private const each, copied into the
# modules that drop them: no tuple of their own in the heap, no global name interned)
_GROUPS = const(
    (
        ("otalink.protocol", ("wire", "cbor")),
        ("otalink.device", ("auth", "ed25519", "ed25519v")),
        ("otalink.protocol", ("command",)),
        ("otalink.device", ("commands", "report", "ops", "begin", "slotbegin")),
        ("otalink.device", ("serve",)),
        ("otalink.protocol", ("small", "resume")),
        ("otalink.device", ("slots", "store", "flash", "flashcfg", "slotops", "decide")),
        ("otalink.device", ("session", "slotwrite", "slotend")),  # the transfer (unload)
        ("otalink.protocol", ("datapath",)),
    )
)
_CODEC = const(0)
_CRYPTO = const(1)
_CMD = const(2)
_COLD = const(3)
_SERVE = const(4)
_SMALL = const(5)
_STORE = const(6)
_XFER = const(7)
_PATH = const(8)
_WAKE = const(("otalink.device", ("wake",)))  # (wake.py: loaded for the call)
_WAKE_E = const(("otalink.device", ("wake", "engine")))
_WAKE_P = const(("otalink.protocol", ("framing", "errors")))

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
    # group: (package, modules), or the index of a shared group in _GROUPS
    pkg_name, names = _GROUPS[group] if type(group) is int else group
    if _mem is not None:
        _mem("drop " + names[0])  # before they go: what the request built is still live
    pkg = sys.modules.get(pkg_name)
    for name in names:
        sys.modules.pop(pkg_name + "." + name, None)
        if pkg is not None and name in pkg.__dict__:
            delattr(pkg, name)


_drop(("otalink.device", ("version",)))


def _drop_lazy(a=None):
    _drop(_CODEC)
    _drop(_CRYPTO)
    _drop(_CMD)
    _drop(_COLD)
    if a is not None:
        x = a.xfer
        if x is None:
            _drop(_XFER)  # (a BEGIN that failed after loading the transfer's modules)
            _drop(_PATH)
        elif x.room:
            gc.collect()  # (BEGIN's code, just dropped, frees its blocks for the room)
            x.claim()


def _ops():
    # the rare state changes (healthy, note_fault, an unexpected error), loaded for the call
    return _lazy("otalink.device.ops")


class Agent:
    # The application's hooks: defaults an application overrides on the instance. Kept out of
    # the instance's attribute table, an agent in a transfer keeps <= 47 entries (not 59); the
    # class's table (29 entries once the engine's methods are in) holds them for nothing.
    on_offer = None
    on_activate = None
    on_message = None

    def __init__(self, cfg, link, bdev, geom, boot=None):
        self.cfg = cfg
        self.link = link
        self.bdev = bdev
        self.geom = geom
        n = cfg.max_payload
        self.max_payload = n
        self.payload = n  # negotiated in HELLO
        self.window = cfg.window
        self.parser = None  # awake: the frame reader and the reply writer (engine.py)
        self.out = None
        self.m = [0, 0, 0, 0, 0, 0, 0]  # parse_small / parse_app / parse_begin output, reused
        self.state = _IDLE
        self.instr = None  # exact BEGIN instruction bytes of the transfer session
        self.params = None  # its (image_len, sha256, compression, wire_len)
        self.ins = None  # and what its checks returned
        self.wire_len = 0
        self.xfer = None  # the transfer machinery (session.Transfer) while loaded
        self.port = None  # the application channel (port.Port) once used
        self.busy = False  # a request is being handled (in slices)
        self.t0 = self.last_rx = time.ticks_ms()
        self.exit = None  # _RUN_STOP / _RUN_RESET: the loader ends the boot
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
        self.app_state = 0  # codes.APP_NONE
        self.activated = False  # an ACTIVATE brought the outputs safe: REBOOT does not ask again
        # the loader's view
        self.progress = 0  # bumped by the line task at every step
        self.parked = False  # the line task waits for the line (healthy by construction)
        self.alive_at = None  # ticks of the application's last alive()
        self.on_slice = None  # the loader's hook between a request's slices (drive.py)
        # the ECU config's path (make()): an agent that has one drops its config at rest and
        # reads it again when it wakes (engine.py)
        self.path = None

    # ---- the application contract -------------------------------------------------------------
    def healthy(self, ok=True):
        # the application proved itself (or failed to): ops.py (awake or at rest)
        _ops().healthy(self, ok)
        _drop(_COLD)

    def alive(self):
        # the application's heartbeat: once called, the supervisor expects it within alive_ms
        self.alive_at = time.ticks_ms()

    def send(self, chan, data):
        # an ECU-initiated event on the application channel (id 0); False when the outbox is
        # full or the message is out of bounds (nothing waits: the caller decides)
        return self._port().send(chan, data)

    def note_fault(self, code):
        # the loader's supervisor records a fault of the running image (persisted; awake or at
        # rest: ops.py needs no engine)
        _ops().note_fault(self, code)
        _drop(_COLD)

    # ---- awake and at rest ----------------------------------------------------------------
    def wake(self):
        # The engine (engine.py: the frame reader, the reply writer, the methods every request
        # uses) is loaded on the first byte from the line by wake.py (loaded for the call), and
        # leaves again when the agent rests (tick()). False when there is no room for it (an
        # application holds the heap): the agent stays at rest, the bytes wait in the line's
        # buffer, the next step tries again (the ECU answers late instead of its loop dying of
        # the MemoryError).
        if self.parser is None:
            try:
                _lazy("otalink.device.wake").wake(self)
            except MemoryError:
                _drop(_WAKE_E)  # (an import cut short)
                _drop(_WAKE_P)
                return False
            _drop(_WAKE)
        return True

    def _port(self):
        p = self.port
        if p is None:
            p = self.port = _lazy("otalink.device.port").Port(self)
        return p

    def poll(self, timeout_ms=100):
        # one synchronous step without asyncio (the loader without an application, tests,
        # benches): device/drive.py, loaded once
        d = sys.modules.get("otalink.device.drive") or _lazy("otalink.device.drive")
        return d.poll(self, timeout_ms)

    def tick(self):
        # the timers (the supervisor calls this every step; poll() after each step): an idle
        # transfer falls back to _IDLE, keep_ms later its machinery goes; run_ms ends the boot
        now = time.ticks_ms()
        quiet = time.ticks_diff(now, self.last_rx)
        idle = self.idle_ms
        if self.busy:
            pass  # a request in slices (an erase, a read-back): quiet counts from its answer
        elif self.state == _RECEIVING and quiet > idle:
            self.state = _IDLE  # the transfer stays loaded for a resume from RAM
        elif self.xfer is not None and self.state == _IDLE:
            if quiet > idle + self.keep_ms:
                self._unload()  # a resume now starts at the last durable checkpoint
        elif self.parser is not None and self.xfer is None and quiet > _REST_MS:
            e = sys.modules.get("otalink.device.engine")
            if e is not None:
                e.rest(self)  # (not while anything is in flight: engine.rest says what)
        rm = self.run_ms
        if rm >= 0 and time.ticks_diff(now, self.t0) >= rm and not self.busy:
            self.exit = _RUN_STOP

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

    a = Agent(cfg, open_link(line), boot.bdev, geom, boot)
    a.path = boot.path  # at rest the config goes; wake reads it again (engine.py)
    return a
