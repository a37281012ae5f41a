# Start-up of the ECU agent (device/main.py runs it, then drops this module and the modules it
# used, so none of their code stays in the heap while the agent serves the line):
#   start(argv) -> (session, memtrace) | None (bad config: already printed)
#   mem_report(live)   the bench's memory hook (one stderr line + the qstr pools)
#
# Three phases, ordered for the heap (on the unix port loaded code lives in the GC heap, which
# allocates first-fit from the bottom and never moves anything):
#   1. the config: config.py and the parsed JSON, copied into a small Settings and freed again,
#      so they leave one big hole at the bottom instead of islands between long-lived objects;
#   2. everything that lives while the agent serves: the serving modules' code, the frame buffer,
#      the line, the flash, Slots (its ring and program buffer) and the Session;
#   3. the boot decision and the bundle run, whose code is freed again on top of that.
import gc
import sys

try:
    from micropython import const
except ImportError:  # CPython (tooling only)

    def const(x):
        return x


# What the session reads of the config
_KEEP = const(("ecu_id", "hw_id", "ecu_seed", "director_keys", "threshold", "max_payload",
               "window", "time_floor", "idle_ms", "run_ms"))  # fmt: skip


class Settings:
    # The config values the session reads, copied. No methods: an instance keeps nothing of this
    # module's code alive (a config.Config would keep all of config.py).
    pass


def _config(path):
    # Phase 1 in its own frame: config.py and the JSON are referenced only here.
    from otalink.device import config

    try:
        cfg = config.load(path)
    except (config.ConfigError, OSError, ValueError) as e:
        print("otalink: config:", e)
        return None
    s = Settings()
    for k in _KEEP:
        setattr(s, k, getattr(cfg, k))
    s.memtrace = cfg.raw.get("memtrace")
    s.bundle_dir = cfg.raw.get("bundle_dir")
    return s, cfg.line, cfg.geom


def _forget(name):
    sys.modules.pop("otalink.device." + name, None)
    pkg = sys.modules["otalink.device"]
    if name in pkg.__dict__:
        delattr(pkg, name)


def start(argv):
    if len(argv) < 2:
        print("usage: micropython -m otalink.device.main CONFIG.json")
        return None
    got = _config(argv[1])
    _forget("config")
    gc.collect()
    if got is None:
        return None
    s, line, geom = got
    got = None
    if not s.memtrace:
        try:
            import os

            s.memtrace = os.getenv("OTALINK_MEMTRACE")
        except (ImportError, AttributeError):
            pass
    # Phase 2. The frame buffer first (the largest block the session keeps).
    from otalink.device import flash, session
    from otalink.device.link import open_link
    from otalink.device.slots import Slots
    from otalink.protocol.hotpath import FrameReader

    parser = FrameReader(s.max_payload)
    # The line before the bundle boots: opening it raw flushes stale input, and bytes the host
    # sends while the bundle boots then wait in the line's buffer instead of being lost.
    link = open_link(line)
    # Flash: the file-backed NOR emulator on the unix port; boards: device-storage's adapter.
    if geom.get("device", "nor-file") == "nor-file":
        bdev = flash.open_flash(geom)
    else:
        opener = getattr(flash, "open_board_flash", None)
        if opener is None:
            raise OSError(19)  # ENODEV: this port has no flash adapter yet
        bdev = opener(geom)
    slots = Slots(bdev, geom)
    sess = session.Session(s, slots, link, s.idle_ms, parser)
    # Phase 3: boot decision (Slots.boot) and the bundle run live in device-storage's modules;
    # imported lazily so the agent still serves the line when a board has no bundle support.
    try:
        from otalink.device import bundle
    except ImportError:
        slots.boot()
    else:
        s.geom = geom  # (boot.bundle_dir reads cfg.geom and cfg.raw)
        s.raw = {"bundle_dir": s.bundle_dir}
        bundle.boot(slots, s)
        del s.geom
        del s.raw
    return sess, s.memtrace


def mem_report(live):
    # Bench hook: one line on stderr. live = highest live heap (after a collection) seen
    # after each handled message; heap = the -X heapsize the agent runs under.
    gc.collect()
    heap = gc.mem_alloc() + gc.mem_free()
    sys.stderr.write("otalink-mem peak_live=%d heap=%d\n" % (live, heap))
    try:
        import micropython

        micropython.qstr_info()  # stdout: qstr pools, counted in the live heap on the unix port
    except (ImportError, AttributeError):
        pass
