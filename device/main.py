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
_GC_EVERY = const(1024)


def main(argv):
    import gc

    gc.threshold(_GC_EVERY)

    try:
        f = open(__file__.rsplit("/", 1)[0] + "/names.txt")
    except (OSError, NameError):
        f = None
    if f is not None:
        i = 0
        for ln in f:
            getattr(main, ln[:-1], None)
            i += 1
            if not i & 7:
                gc.collect()
        f.close()
        f = None
        gc.collect()

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
    sess, memtrace = started
    started = None
    from otalink.device import session as _s  # (loaded by start: the session's own code)

    gc.collect()
    # Intern the names of the modules the session imports per HELLO/BEGIN and drops again
    # (CBOR codec, message parsers, crypto) now: qstrs are never freed, and a qstr pool first
    # created later would sit between the freed code and fragment the heap for good.
    # One group at a time, as the session uses them (they never share the heap).
    for load in (_s._messages, _s._crypto, _s._report_mod):
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
    r = sess.run(sess.cfg.run_ms)
    sess.link.close()
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
