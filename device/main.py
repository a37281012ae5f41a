# Entry point of the ECU agent:
#   micropython -X heapsize=64k -m otalink.device.main CONFIG.json
# 1. load the ECU config (+ board profile); 2. open flash, Slots, apply the boot decision table
# and boot the chosen slot's bundle (device-storage's code); 3. serve the line until REBOOT.
#
# Exit statuses on the unix port (the ECU runner, host/ecusim, acts on them):
#   0   EXIT_STOP    stopped on purpose (config "run_ms" elapsed): do not restart
#   64  EXIT_RESET   the host sent REBOOT: restart on the same flash file and line (a board's reset)
#   65  EXIT_CONFIG  the config is unusable (ConfigError): do not restart
#   1   uncaught exception (MicroPython's own status): a crash; the runner may restart it like a
#       watchdog reset. A power cut from the flash emulator is SIGKILL (-9), not an exit status.
# On boards REBOOT is machine.reset().
import sys

try:
    from micropython import const
except ImportError:  # CPython (tooling only)

    def const(x):
        return x


_EXIT_STOP = const(0)
_EXIT_RESET = const(64)
_EXIT_CONFIG = const(65)


def _start(argv):
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
    return _Settings(cfg), slots, link, memtrace, parser


class _Settings:
    # What the session reads of the config, copied: a Config instance would keep its class and so
    # the whole config module (code and names) alive for as long as the agent serves.
    def __init__(self, cfg):
        for k in ("ecu_id", "hw_id", "ecu_seed", "director_keys", "threshold", "max_payload",
                  "window", "time_floor", "idle_ms", "run_ms"):  # fmt: skip
            setattr(self, k, getattr(cfg, k))


def main(argv):
    import gc

    started = _start(argv)
    if started is None:
        return _EXIT_CONFIG
    cfg, slots, link, memtrace, parser = started
    started = None
    # Start-up only code leaves the heap: drop the modules from sys.modules and their package so
    # the GC can free their code (on the unix port loaded .mpy code lives in the heap; boards
    # freeze it into flash instead).
    mod = sys.modules["otalink.device"]
    for n in ("config", "bundle", "boot"):
        sys.modules.pop("otalink.device." + n, None)
        if n in mod.__dict__:
            delattr(mod, n)
    mod = None
    from otalink.device import session as _s

    gc.collect()
    # The session before the lazy modules below are loaded and dropped (its frame buffer was made
    # first thing in _start, like Slots' transfer ring in Slots()).
    sess = _s.Session(cfg, slots, link, cfg.idle_ms, parser)
    parser = None
    # Intern the names of the modules the session imports per HELLO/BEGIN and drops again
    # (CBOR codec, message parsers, crypto) now: qstrs are never freed, and a qstr pool first
    # created later would sit between the freed code and fragment the heap for good.
    try:
        _s._messages()
        _s._crypto()
    except MemoryError:
        pass  # only an optimisation; the session imports them when needed
    _s._drop_lazy()
    gc.collect()
    if memtrace:
        gc.collect()
        sess.memtrace = [gc.mem_alloc()]
        sys.stderr.write("otalink-mem start=%d\n" % sess.memtrace[0])
    r = sess.run(cfg.run_ms)
    link.close()
    if memtrace:
        _mem_report(sess.memtrace[0])
    if r == _s.RUN_RESET:
        if sys.platform == "linux" or sys.platform == "darwin":
            sys.exit(_EXIT_RESET)
        import machine

        machine.reset()
    return _EXIT_STOP


def _mem_report(live):
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


if __name__ == "__main__":
    sys.exit(main(sys.argv))
