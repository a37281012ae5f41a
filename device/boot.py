# Boot sequence of the agent on ports whose slots hold application bundles (unix, rp2, stm32):
#   1. Slots.boot() applies the boot decision table (decide.BOOT_TABLE, docs/device.md) and says
#      which slot to run, counting trial boots and reverting exhausted trials by itself;
#   2. the chosen slot's bundle is extracted (bundle.extract) and its entry module imported;
#   3. a slot on trial must pass its self-test: if the import raises -> trial_failed(E_BOOT_CRASH),
#      if the self-test does not return True -> trial_failed(E_SELFTEST); both roll back at once
#      and the loop boots the fallback slot in the same process (no reset needed). A crash that
#      kills the process (or a watchdog reset) is caught by the boot count instead: after
#      trial_boots boots without a passing self-test the table reverts with E_BOOT_CRASH,
#      and with a passing self-test but no CONFIRM with E_NOT_CONFIRMED.
# Exit statuses of the unix agent are defined in device/main.py (0 stop, 64 reset, 65 config).
import sys

from micropython import const
from otalink.device import bundle

# protocol/codes.py values used here (private copies, checked by tests/protocol/test_wire.py)
_OK = const(0)
_E_NO_IMAGE = const(42)
_E_SELFTEST = const(50)
_E_BOOT_CRASH = const(51)
_E_INTERNAL = const(63)
_SLOT_TRIAL = const(4)


def bundle_dir(slots, cfg=None):
    # Where bundles are extracted: config "bundle_dir" (or the geometry's), else beside the flash
    # file (unix), else /apps (boards). (Slots keeps no copy of the geometry: cfg.geom is it.)
    g = getattr(cfg, "geom", None) or {}
    d = g.get("bundle_dir")
    if d is None and cfg is not None:
        raw = getattr(cfg, "raw", None) or {}
        d = raw.get("bundle_dir")
    if d is None:
        p = g.get("path")
        d = p + ".apps" if p else "/apps"
    return d


class Running:
    # what boot produced: the slot, the decision, the imported entry module (or None)
    def __init__(self, slot, action, reason, module, error):
        self.slot = slot
        self.action = action
        self.reason = reason
        self.module = module
        self.error = error  # OK, or why the application is not running


_loaded = []  # (path entry, module names) of the bundle imported in this process


def _unload():
    while _loaded:
        path, mods = _loaded.pop()
        if path in sys.path:
            sys.path.remove(path)
        for m in mods:
            if m in sys.modules:
                del sys.modules[m]


def load(slots, slot, folder):
    # extract + import; returns (module, selftest callable or None)
    st = slots.slot[slot]
    sha_hex = "".join("%02x" % b for b in st[5])
    path = folder + "/slot%d" % slot
    bundle._mkdirs(folder)
    entry, selftest, mods = bundle.extract(slots.regions[slot], st[4], sha_hex, path, slots.cbuf)
    _unload()
    sys.path.insert(0, path)
    _loaded.append((path, mods))
    mod = __import__(entry)
    for part in entry.split(".")[1:]:
        mod = getattr(mod, part)
    test = None
    if selftest:
        mname, fname = selftest.rsplit(".", 1)
        tmod = __import__(mname)
        for part in mname.split(".")[1:]:
            tmod = getattr(tmod, part)
        test = getattr(tmod, fname)
    return mod, test


def run(slots, cfg=None, folder=None):
    if folder is None:
        folder = bundle_dir(slots, cfg)
    for _ in range(3):  # at most: a failing trial, then its fallback
        slot, action, reason = slots.boot()
        if slot < 0:
            return Running(-1, action, reason, None, _E_NO_IMAGE)
        trial = slots.slot[slot][0] == _SLOT_TRIAL
        try:
            mod, test = load(slots, slot, folder)
        except Exception as e:  # the bundle raised on import (or is malformed)
            sys.print_exception(e) if hasattr(sys, "print_exception") else None
            _unload()
            if trial and slots.trial_failed(_E_BOOT_CRASH):
                continue
            return Running(slot, action, reason, None, _E_BOOT_CRASH)
        if not trial:
            return Running(slot, action, reason, mod, _OK)
        try:
            ok = test is not None and test() is True
        except Exception as e:
            sys.print_exception(e) if hasattr(sys, "print_exception") else None
            ok = False
        if ok:
            slots.trial_passed()
            return Running(slot, action, reason, mod, _OK)
        _unload()
        slots.trial_failed(_E_SELFTEST)
    return Running(-1, -1, _E_INTERNAL, None, _E_INTERNAL)
