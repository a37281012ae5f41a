# The loader's boot sequence (part of the immutable loader: device/loader.py runs it once per
# boot, then drops it; docs/device.md "Loader", docs/adr/0007-ecu-component.md):
#
#   main(argv) -> Boot | exit status    start() and the bench's memory hook
#   start(argv) -> Boot | exit status
#
#   1. the ECU config (start.py), the flash, the newest state record (Slots), the reset cause
#      (wdt.cause()); after a watchdog reset of a trial image the trip is counted (note_wdt);
#   2. the boot decision table (Slots.boot(), decide.BOOT_TABLE) picks the slot;
#   3. the watchdog starts (wdt.start) before anything of the slot is imported;
#   4. the slot's bundle is extracted (skipped when its folder already holds this sha256);
#   5. a format-2 bundle with an agent: every otalink module is forgotten, the slot's folder goes
#      first on sys.path (on the unix port the base path is removed, so a module missing from
#      the bundle can never silently come from the factory copy) and the slot's agent is
#      imported and made (make(boot)); otherwise the recovery agent (the base copy: frozen into
#      the firmware on boards, build/mpy on unix) runs, the ECU stays reachable and updatable;
#   6. the application is imported (fmt 2: `app`, with `async def main(agent)` or
#      `def poll(agent)`; fmt 1: `entry` and its self-test, the semantics of issues 1-10).
# Failures: on a trial, the slot's agent failing at import records E_AGENT_FAILED (with the base
# storage, after sys.path is restored) and resets; the application failing at import records
# E_APP_FAILED and resets; a trial that runs out of boots reverts with that reason
# (BOOT_TABLE). On a confirmed slot the agent failing runs the recovery agent, the application
# failing runs the agent alone (INFO shows the fault). A format-1 trial bundle that raises at
# import (E_BOOT_CRASH) or fails its self-test (E_SELFTEST) is rolled back at once and the
# fallback boots in the same process, as before.
import sys

from micropython import const
from otalink.device import bundle

# protocol/codes.py values used here (private copies, checked by tests/protocol/test_wire.py)
_E_SELFTEST = const(50)
_E_BOOT_CRASH = const(51)
_E_APP_FAILED = const(56)
_E_AGENT_FAILED = const(57)
_SLOT_TRIAL = const(4)
_APP_STARTED = const(1)
_APP_HEALTHY = const(2)
_APP_FAILED = const(3)
_EXIT_RESET = const(64)  # loader.py
_EXIT_CONFIG = const(65)
_STORAGE = ("slots", "store", "slotops", "decide", "flash", "flashcfg", "start", "config")


class Boot:
    # What the loader hands the agent (make(boot)) and keeps for its supervisor: attributes
    # only (docs/device.md "Loader and agent"): path (config file), bdev (the flash device),
    # geom, cause, slot, action, reason, trial, boot_state, last_error, fault, fmt (0: no
    # bundle), dir (the slot's folder), app (entry module name), agent_name, and the settings
    # the supervisor reads (wdt_ms, trial_ms, alive_ms, poll_ms, memtrace).
    pass


def _forget(names):
    pkg = sys.modules.get("otalink.device")
    for n in names:
        sys.modules.pop("otalink.device." + n, None)
        if pkg is not None and n in pkg.__dict__:
            delattr(pkg, n)


def _forget_otalink():
    for k in list(sys.modules):
        if k == "otalink" or k.startswith("otalink."):
            del sys.modules[k]


def _base():
    # the sys.path entry holding the base (factory) otalink package ("" when frozen)
    f = getattr(bundle, "__file__", "") or ""
    for _ in range(3):
        i = f.rfind("/")
        f = f[:i] if i > 0 else ""
    return f


def _set_path(entries):
    while sys.path:
        sys.path.pop()
    for e in entries:
        sys.path.append(e)


def bundle_dir(geom, d=None):
    # config "bundle_dir" (or the geometry's), else beside the flash file (unix), else /apps.
    # Relative to the working directory when it lies below it: every module the slot's folder
    # supplies is interned with its path (__file__) for good, so a shorter path is fewer heap
    # bytes, and the same whatever directory the ECU runs in.
    d = geom.get("bundle_dir") or d
    if d is None:
        p = geom.get("path")
        d = p + ".apps" if p else "/apps"
    try:
        import os

        cwd = os.getcwd()
    except (ImportError, AttributeError, OSError):
        return d
    if cwd != "/" and d.startswith(cwd + "/"):
        d = d[len(cwd) + 1 :]
    return d


def _resolve(name):
    m = __import__(name)
    for part in name.split(".")[1:]:
        m = getattr(m, part)
    return m


def _fmt1(b, s, path, entry, selftest):
    # a format-1 bundle (issues 1-10): import its entry; on a trial run its self-test. False: it
    # was rolled back (boot again); True: it runs (or, confirmed but broken, the agent alone).
    mods = bundle.module_names(s.regions[b.slot], s.slot[b.slot][4])
    sys.path.insert(0, path)
    try:
        mod = _resolve(entry)
        test = None
        if selftest:
            mname, fname = selftest.rsplit(".", 1)
            test = getattr(_resolve(mname), fname)
    except Exception as e:  # the bundle raised on import
        sys.print_exception(e)
        _unload(path, mods)
        if b.trial and s.trial_failed(_E_BOOT_CRASH):
            return False
        b.app_state = _APP_FAILED
        return True
    b.app_state = _APP_STARTED
    b.app_mod = mod
    if not b.trial:
        return True
    try:
        ok = test is not None and test() is True
    except Exception as e:
        sys.print_exception(e)
        ok = False
    if ok:
        s.trial_passed()
        b.app_state = _APP_HEALTHY
        return True
    _unload(path, mods)
    s.trial_failed(_E_SELFTEST)
    b.app_mod = None
    return False


def _unload(path, mods):
    if path in sys.path:
        sys.path.remove(path)
    for m in mods:
        sys.modules.pop(m, None)


def _note(b, code):
    # record a fault with the base storage (the slot's agent could not be trusted to)
    from otalink.device.slots import Slots

    try:
        Slots(b.bdev, b.geom, None, None, False).note_fault(code)
    except Exception as e:
        sys.print_exception(e)
    _forget(_STORAGE)


def main(argv):
    # start(), then what the loader keeps: the boot's facts, the agent, the application; the
    # geometry and the boot's own helpers leave with this module
    import gc

    b = start(argv)
    if isinstance(b, int):
        return b
    b.geom = None
    b.tick = None
    if b.memtrace:
        a = b.agent
        gc.collect()
        a.memtrace = [gc.mem_alloc()]
        sys.stderr.write("otalink-mem start=%d\n" % a.memtrace[0])
        try:
            from otalink.device import memhook

            b.agent_mod._mem = memhook.sampler(a.memtrace)
        except ImportError:
            pass
    return b


def start(argv):
    import gc

    from otalink.device import start as st
    from otalink.device import wdt

    if len(argv) < 2:
        print("usage: micropython -m otalink.device.loader CONFIG.json")
        return _EXIT_CONFIG
    got = st.settings(argv[1])
    st = None
    _forget(("start", "config"))
    gc.collect()
    if got is None:
        return _EXIT_CONFIG
    cfg, _line, geom = got
    got = None
    b = Boot()
    b.path = argv[1]
    b.geom = geom
    for k in ("wdt_ms", "trial_ms", "alive_ms", "poll_ms", "memtrace"):
        setattr(b, k, getattr(cfg, k))
    folder = bundle_dir(geom, cfg.bundle_dir)
    cfg = None
    from otalink.device import flash

    if geom.get("device", "nor-file") == "nor-file":
        b.bdev = flash.open_flash(geom)
    else:
        b.bdev = flash.open_board_flash(geom)
    from otalink.device.slots import Slots

    s = Slots(b.bdev, geom)
    b.cause = wdt.cause()
    if b.cause == "wdt":
        s.note_wdt()
    slot, action, reason = s.boot()
    dog = b.dog = wdt.start(b.wdt_ms)  # before anything of the slot is imported
    feed = wdt.feed

    def tick():
        feed(dog)

    b.tick = tick
    b.app_mod = None
    b.app_state = 0
    while True:
        b.slot, b.action, b.reason = slot, action, reason
        b.trial = slot >= 0 and s.slot[slot][0] == _SLOT_TRIAL
        b.fmt = 0
        b.dir = None
        b.app = ""
        b.agent_name = ""
        if slot < 0:
            break
        path = folder + "/slot%d" % slot
        st = s.slot[slot]
        try:
            bundle._mkdirs(folder)
            sha = "".join("%02x" % x for x in st[5])
            fmt, x, y = bundle.extract(s.regions[slot], st[4], sha, path, s.cbuf, b.tick)
        except Exception as e:  # malformed bundle (its hash was right: a bad build) or flash
            sys.print_exception(e)
            if b.trial and s.trial_failed(_E_BOOT_CRASH):
                slot, action, reason = s.boot()
                continue
            slot = -1
            continue
        b.fmt = fmt
        b.dir = path
        b.app = x
        if fmt == 2:
            b.agent_name = y
            break
        if _fmt1(b, s, path, x, y):
            break
        slot, action, reason = s.boot()
    b.boot_state = s.boot_state
    b.last_error = s.last_error
    b.fault = s.fault
    s = None
    _forget(_STORAGE)
    gc.collect()
    agent = None
    mod = None
    b.sup = None
    if b.fmt == 2 and b.app:
        # the supervisor of an application's event loop: part of the loader, so the base copy,
        # imported before the slot's folder replaces the base path
        from otalink.device import supervise

        b.sup = supervise
    if b.agent_name:
        saved = list(sys.path)
        base = _base()
        keep = [b.dir]
        unix = sys.platform == "linux" or sys.platform == "darwin"
        for e in saved:
            if e != b.dir and e != "" and not (unix and e == base):
                keep.append(e)
        _forget_otalink()
        _set_path(keep)
        try:
            mod = __import__(b.agent_name, None, None, ("*",))
            agent = mod.make(b)
        except Exception as e:  # (MemoryError, ImportError, a bug in the new agent)
            sys.print_exception(e)
            agent = None
            mod = None
            _forget_otalink()
            _set_path(saved)
            _note(b, _E_AGENT_FAILED)
            b.fault = _E_AGENT_FAILED
            if b.trial:
                return _EXIT_RESET
            print("otalink: the slot's agent failed: the recovery agent runs")
        b.tick()
    if agent is None:
        # the recovery agent: the base copy; then an application of the slot imports from its
        # folder (otalink itself is imported by now, so its modules keep coming from the base)
        mod = __import__("otalink.device.agent", None, None, ("*",))
        agent = mod.make(b)
        if b.dir and b.fmt == 2 and b.app:
            sys.path.insert(0, b.dir)
    b.agent = agent
    b.agent_mod = mod
    if b.fmt == 1:
        agent.app_state = b.app_state
        return b
    if not b.app:
        if b.trial:
            agent.healthy(True)  # an agent-only image is healthy when its agent runs
        return b
    try:
        app = __import__(b.app, None, None, ("*",))
    except Exception as e:
        sys.print_exception(e)
        agent.note_fault(_E_APP_FAILED)
        agent.app_state = _APP_FAILED
        if b.trial:
            return _EXIT_RESET
        return b  # a confirmed slot: the agent runs alone (INFO shows the fault)
    b.tick()
    agent.app_state = _APP_STARTED
    b.app_mod = app
    test = getattr(app, "selftest", None)
    if b.trial and test is not None:
        try:
            ok = test() is True
        except Exception as e:
            sys.print_exception(e)
            ok = False
        agent.healthy(ok)  # not healthy: rolled back now (E_SELFTEST), the agent resets
        if not ok:
            return _EXIT_RESET
    return b
