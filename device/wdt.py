# The watchdog the loader starts before anything of a slot is imported (part of the immutable
# loader; docs/device.md "Watchdog"):
#
#   start(timeout_ms) -> dog                 once per boot; like the hardware, it cannot be
#                                            stopped or re-timed afterwards
#   feed(dog)                                (the loader keeps a copy of it: this module leaves)
#   cause() -> "power" | "wdt" | "soft" | "crash"    why this boot happened
#
# Boards: machine.WDT(timeout=...) and machine.reset_cause() == machine.WDT_RESET.
# Unix port (no machine.WDT): the ECU runner (host/ecusim) emulates one. It passes the write
# end of a pipe as OTALINK_WDT_FD; the device opens /dev/fd/N and writes "S<timeout_ms>\n" once to
# start it, then one byte per feed. Not fed within the timeout, the runner SIGKILLs the process
# and starts it again with OTALINK_RESET_CAUSE=wdt (the runner sets the cause of every start).
# Without OTALINK_WDT_FD (micropython -m ... by hand, the session tests) feed() does nothing
# and that is said once on stdout.
import os


def start(timeout_ms):
    # -> the running watchdog: an object with feed() (machine.WDT), a file (the runner's pipe:
    # one byte per feed) or None (no watchdog); the loader's feed() takes any of them. (No class
    # of this module lives on, so the module leaves the heap after boot.)
    try:
        import machine

        return machine.WDT(timeout=timeout_ms)
    except (ImportError, AttributeError):
        pass
    fd = os.getenv("OTALINK_WDT_FD")
    if fd:
        try:
            f = open("/dev/fd/" + fd, "wb")
            f.write(("S%d\n" % timeout_ms).encode())
            return f
        except OSError:
            pass
    print("otalink: no watchdog on this port (OTALINK_WDT_FD unset)")
    return None


def feed(dog):
    if dog is None:
        return
    try:
        if hasattr(dog, "feed"):
            dog.feed()
        else:
            dog.write(b".")
    except OSError:
        pass  # the runner is gone: nothing watches us any more


def cause():
    try:
        import machine

        rc = machine.reset_cause()
        if rc == machine.WDT_RESET:
            return "wdt"
        if rc == machine.SOFT_RESET:
            return "soft"
        return "power"
    except (ImportError, AttributeError):
        pass
    return os.getenv("OTALINK_RESET_CAUSE") or "power"
