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
_START_UP = const(("otalink.device", ("start", "config", "bundle", "boot")))


def _intern_names(gc):
    # Every name the agent will need, interned before anything else is allocated: qstrs are never
    # freed, and interned here their pools and 128-byte string chunks sit together at the bottom
    # of the heap instead of between long-lived objects (names.txt: tools/build_mpy.py). getattr
    # with a str interns it (the lookup itself fails harmlessly). No file (frozen code): skipped.
    try:
        f = open(__file__.rsplit("/", 1)[0] + "/names.txt")
    except (OSError, NameError):
        return False
    i = 0
    for ln in f:
        getattr(_intern_names, ln[:-1], None)
        i += 1
        if not i & 7:
            gc.collect()  # the line strings are garbage: free them before the next pool chunk
    f.close()
    gc.collect()
    return True


def main(argv):
    import gc

    # Collect after every 1 KiB allocated, for the agent's life: garbage then never piles up
    # between long-lived objects (the GC allocates first-fit and never moves anything), and the
    # ed25519 big-int churn at HELLO / BEGIN stays in the lowest free space. The DATA path
    # allocates nothing, so it never triggers a collection.
    gc.threshold(_GC_EVERY)
    named = _intern_names(gc)
    from otalink.device import session as _s
    from otalink.device import start

    started = start.start(argv)
    start = None
    # Start-up only code leaves the heap (on the unix port loaded .mpy code lives in the heap;
    # boards freeze it into flash instead).
    _s._drop(_START_UP)
    if started is None:
        return _EXIT_CONFIG
    sess, memtrace = started
    started = None
    gc.collect()
    # Without names.txt (e.g. .mpy files copied to a board's filesystem without it), intern the
    # names of the modules the session imports per HELLO / BEGIN and drops again by loading each
    # group once now: a qstr pool first created later would sit between the freed code and
    # fragment the heap for good. One group at a time, as the session uses them.
    for load in () if named else (_s._messages, _s._crypto, _s._report_mod):
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
