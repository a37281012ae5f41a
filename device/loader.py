# The ECU firmware's entry: the immutable loader (docs/device.md "Loader and supervisor",
# docs/adr/0007-ecu-component.md):
#   micropython -X heapsize=64k -m otalink.device.loader CONFIG.json      (unix port)
#   boards/main.py calls main(["otalink", "otalink.json"])               (boards)
# (-m otalink.device.main is an alias, kept for every existing runner and test.)
#
# 1. boot.start(): config, flash, state record, reset cause, boot decision, watchdog, bundle,
#    the agent (the slot's, or the recovery copy) and the application imported; then the boot
#    code leaves the heap;
# 2. asyncio runs three tasks: the agent (agent.run()), the application (`await main(agent)`,
#    or `poll(agent)` every poll_ms) and the supervisor below; without an application task (no
#    application, a format-1 bundle, an agent-only image) the agent's line loop runs alone,
#    without the event loop (_serve: its heap is paid only beside an application);
# 3. the boot ends when the agent asks (REBOOT: reset; config run_ms: stop), or the supervisor
#    resets (a fault, the trial deadline) or stops feeding the watchdog (a hang).
#
# The supervisor (supervise.py, part of the loader: immutable, whatever agent runs) feeds the
# watchdog every
# wdt_ms / 4 only while both the agent and the application make progress: the agent's progress
# counter moved or its line task is parked on the line (waiting for input is healthy by
# construction: any byte wakes it); the application's task has not ended and, once it called
# agent.alive(), calls it again within alive_ms (the poll form counts each poll() that returns).
# An application that hangs (`while True: pass`) or starves the loop (a blocking sleep) starves
# the supervisor too, so the watchdog fires. A task that raised: the fault is recorded
# (E_APP_CRASH, E_APP_MEMORY for MemoryError), then a reset; on a confirmed slot whose
# application already faulted in the boot before, the agent runs on alone instead (the ECU stays
# updatable; INFO shows the fault). On a trial boot a CONFIRM must arrive within trial_ms, else
# a deliberate reset (cause "soft") advances the boot count, which ends in E_NOT_CONFIRMED.
#
# Exit statuses on the unix port (the ECU runner, host/ecusim, acts on them):
#   0   EXIT_STOP    stopped on purpose (config "run_ms" elapsed): do not restart
#   64  EXIT_RESET   a reset: REBOOT, a recorded fault, the trial deadline (restarted, "soft")
#   65  EXIT_CONFIG  the config is unusable: do not restart
#   1   uncaught exception (MicroPython's own status): a crash, restarted ("crash")
#   the runner's watchdog SIGKILLs a process that stops feeding it (restarted, "wdt").
# On boards a reset is machine.reset().
import sys

try:
    from micropython import const
except ImportError:  # CPython (tooling only)

    def const(x):
        return x


EXIT_STOP = const(0)
EXIT_RESET = const(64)
EXIT_CONFIG = const(65)
_RUN_RESET = const(1)  # agent._RUN_RESET
_E_NOT_CONFIRMED = const(52)
_E_AGENT_FAILED = const(57)
_GC_EVERY = const(1024)


def _feed(dog):
    # wdt.feed (a copy: wdt.py leaves the heap after boot)
    if dog is None:
        return
    try:
        if hasattr(dog, "feed"):
            dog.feed()
        else:
            dog.write(b".")
    except OSError:
        pass


def _serve(b):
    # No application task (none in the slot, a format-1 bundle, an agent-only image): the agent's
    # line loop runs without the event loop, so asyncio's heap is paid only beside an
    # application. The same supervision: the watchdog fed while the loop goes round (a request
    # that hangs starves it), the trial deadline.
    import time

    a = b.agent
    dog = b.dog
    every = b.wdt_ms // 4
    step = every if every < 100 else 100
    _feed(dog)  # (the boot's imports are behind us)
    t0 = time.ticks_ms()
    last = [t0]

    def fed():
        # between two polls and between two slices of a request (a slot's erase, a signature):
        # each returning step is progress; a step that never returns starves the watchdog
        now = time.ticks_ms()
        if time.ticks_diff(now, last[0]) >= every:
            _feed(dog)
            last[0] = now
        return now

    a.on_slice = fed
    while True:
        try:
            a.poll(step)  # up to step ms on the line, then every frame handled, then tick()
        except Exception as e:
            # escaped the agent (a bug, or a heap too full even for its error handler): reset,
            # as the supervisor does when the agent's task ends (a trial records it), instead
            # of ending the program with no agent on the line
            sys.print_exception(e)
            if b.trial:
                try:
                    a.note_fault(_E_AGENT_FAILED)
                except Exception:
                    pass  # (the next boot counts the trial's boots all the same)
            return _RUN_RESET
        if a.exit is not None:
            return a.exit
        now = fed()
        if b.trial and a.trial and time.ticks_diff(now, t0) > b.trial_ms:
            print("otalink: no CONFIRM within trial_ms - reset")
            a.note_fault(_E_NOT_CONFIRMED)  # the reason when the trial runs out of boots
            return _RUN_RESET


def _boot(argv):
    # The boot sequence (boot.py). When the slot supplies the agent, boot.py forgets every
    # otalink module and imports the slot's: the base packages' objects then leave sys.modules
    # with their attributes still naming the boot sequence's modules (boot, bundle, wdt, ...),
    # and while anything refers to a base package those stay live for the ECU's life.
    from otalink.device import boot

    top = sys.modules.get("otalink")
    b = boot.main(argv)
    if top is not None:
        _strip(top)
    return b


def _strip(pkg):
    # a base package's module attributes that sys.modules no longer holds under their name,
    # sub-packages first
    for k in list(pkg.__dict__):
        v = pkg.__dict__[k]
        if type(v) is type(sys) and k != "__class__":
            name = pkg.__name__ + "." + k
            if sys.modules.get(name) is not v:
                if hasattr(v, "__path__"):
                    _strip(v)
                delattr(pkg, k)


def main(argv):
    import gc

    # Collect after every 1 KiB allocated, for the ECU's life: garbage never piles up between
    # long-lived objects (the GC allocates first-fit and never moves anything).
    gc.threshold(_GC_EVERY)
    if ".frozen" not in sys.path:
        sys.path.append(".frozen")  # asyncio is frozen into the port (MICROPYPATH replaces it)
    b = _boot(argv)
    # the boot sequence leaves the heap (on the unix port loaded .mpy code lives in it)
    pkg = sys.modules.get("otalink.device")
    for name in ("boot", "bundle", "wdt"):
        sys.modules.pop("otalink.device." + name, None)
        if pkg is not None and name in pkg.__dict__:
            delattr(pkg, name)
    pkg = None
    gc.collect()
    if isinstance(b, int):
        return _exit(b)
    m = b.app_mod
    if m is not None and b.sup is not None and (hasattr(m, "main") or hasattr(m, "poll")):
        import asyncio

        r = asyncio.run(b.sup.run(b))  # (supervise.py: the base copy, boot.py imported it)
    else:
        r = _serve(b)
    m = None
    a = b.agent
    try:
        a.link.close()
    except Exception:
        pass
    if a.memtrace:
        from otalink.device import start

        start.mem_report(a.memtrace[0])
    return _exit(EXIT_RESET if r == _RUN_RESET else EXIT_STOP)


def _exit(code):
    # A reset ends this boot wherever main() was called from (boards/main.py, -m, a test): on
    # the unix port the process exits 64 and its runner (ECU runner, UnixBoard) boots it again,
    # as a board's reset would; returning 64 to boards/main.py would leave the board in its REPL.
    if code == EXIT_RESET:
        if sys.platform == "linux" or sys.platform == "darwin":
            sys.exit(EXIT_RESET)
        import machine

        machine.reset()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
