# Entry point of the ECU agent:
#   micropython -X heapsize=64k -m otalink.device.main CONFIG.json
# 1. start.py: load the ECU config (+ board profile), open flash, Slots, apply the boot decision
# table and boot the chosen slot's bundle; 2. drop the start-up code; 3. serve the line until
# REBOOT.
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


class _Settings:
    # What the session reads of the config, copied: a Config instance would keep its class and so
    # the whole config module (code and names) alive for as long as the agent serves.
    def __init__(self, cfg):
        for k in ("ecu_id", "hw_id", "ecu_seed", "director_keys", "threshold", "max_payload",
                  "window", "time_floor", "idle_ms", "run_ms"):  # fmt: skip
            setattr(self, k, getattr(cfg, k))


def main(argv):
    import gc

    from otalink.device import start

    started = start.start(argv)
    start = None
    # Start-up only code leaves the heap: drop the modules from sys.modules and their package so
    # the GC can free their code (on the unix port loaded .mpy code lives in the heap; boards
    # freeze it into flash instead).
    mod = sys.modules["otalink.device"]
    for n in ("start", "config", "bundle", "boot"):
        sys.modules.pop("otalink.device." + n, None)
        if n in mod.__dict__:
            delattr(mod, n)
    mod = None
    if started is None:
        return _EXIT_CONFIG
    cfg, slots, link, memtrace, parser = started
    started = None
    cfg = _Settings(cfg)
    from otalink.device import session as _s

    gc.collect()
    # The session before the lazy modules below are loaded and dropped (its frame buffer was made
    # first thing in start.start(), like Slots' transfer ring in Slots()).
    sess = _s.Session(cfg, slots, link, cfg.idle_ms, parser)
    parser = None
    # Intern the names of the modules the session imports per HELLO/BEGIN and drops again
    # (CBOR codec, message parsers, crypto) now: qstrs are never freed, and a qstr pool first
    # created later would sit between the freed code and fragment the heap for good.
    # One group at a time, as the session uses them (they never share the heap).
    for load in (_s._messages, _s._crypto):
        try:
            load()
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
        from otalink.device import start

        start.mem_report(sess.memtrace[0])
    if r == _s.RUN_RESET:
        if sys.platform == "linux" or sys.platform == "darwin":
            sys.exit(_EXIT_RESET)
        import machine

        machine.reset()
    return _EXIT_STOP


if __name__ == "__main__":
    sys.exit(main(sys.argv))
