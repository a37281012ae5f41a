# Start-up of the ECU agent (device/main.py runs it, then drops this module and the modules it
# used, so none of their code stays in the heap while the agent serves the line):
#   start(argv) -> (config, slots, link, memtrace, parser) | None (bad config: already printed)
#   mem_report(live)   the bench's memory hook (one stderr line + the qstr pools)
import sys


def start(argv):
    # Start-up in its own frame: the config module and the parsed JSON are referenced only here,
    # so once it returns (and main() forgot them) the GC can free them before the session allocates.
    from otalink.device import config
    from otalink.device.link import open_link
    from otalink.device.slots import Slots

    if len(argv) < 2:
        print("usage: micropython -m otalink.device.main CONFIG.json")
        return None
    try:
        cfg = config.load(argv[1])
    except (config.ConfigError, OSError, ValueError) as e:
        print("otalink: config:", e)
        return None
    memtrace = cfg.raw.get("memtrace")
    if not memtrace:
        try:
            import os

            memtrace = os.getenv("OTALINK_MEMTRACE")
        except (ImportError, AttributeError):
            pass
    # The frame buffer (the largest block of the session) first, while the heap is compact; the
    # start-up code freed below would otherwise leave no 4 KiB hole for it in a 96k heap.
    from otalink.protocol.hotpath import FrameReader

    parser = FrameReader(cfg.max_payload)
    # The line first: opening it raw flushes stale input, and bytes the host sends while the
    # bundle boots then wait in the line's buffer instead of being lost.
    link = open_link(cfg.line)
    # Flash: the file-backed NOR emulator on the unix port; boards: device-storage's adapter.
    # (Helpers are inlined here and below: every function name is a qstr the heap keeps.)
    from otalink.device import flash

    if cfg.geom.get("device", "nor-file") == "nor-file":
        bdev = flash.open_flash(cfg.geom)
    else:
        opener = getattr(flash, "open_board_flash", None)
        if opener is None:
            raise OSError(19)  # ENODEV: this port has no flash adapter yet
        bdev = opener(cfg.geom)
    slots = Slots(bdev, cfg.geom)
    # Boot decision (Slots.boot) and the bundle run live in device-storage's modules; imported
    # lazily so the agent still serves the line when a board has no bundle support.
    try:
        from otalink.device import bundle
    except ImportError:
        slots.boot()
    else:
        bundle.boot(slots, cfg)
    return cfg, slots, link, memtrace, parser


def mem_report(live):
    # Bench hook: one line on stderr. live = highest live heap (after a collection) seen
    # after each handled message; heap = the -X heapsize the agent runs under.
    import gc

    gc.collect()
    heap = gc.mem_alloc() + gc.mem_free()
    sys.stderr.write("otalink-mem peak_live=%d heap=%d\n" % (live, heap))
    try:
        import micropython

        micropython.qstr_info()  # stdout: qstr pools, counted in the live heap on the unix port
    except (ImportError, AttributeError):
        pass
