# The loader's base packages after a boot whose slot supplies the agent (device/loader.py
# _boot/_strip): boot.py forgets every otalink module and imports the slot's copies, so the base
# package objects leave sys.modules with their attributes still naming the modules the boot
# sequence loaded (boot, bundle, wdt, the base errors, ...). Whatever still referred to a base
# package kept all of those live for the ECU's life: 12.7 KB beside the BMS example. Here the
# same situation with two copies of a package on disk: the base copy's modules must leave the
# heap, the loaded ones must stay.
# mpy-heapsize: 256k
import gc
import os
import sys

from otalink.device import loader

BIG = 16384  # what a base module holds (its code, in the real case)


def _tree(root, tag):
    # a package "pkgx" with a module "a" that holds BIG bytes and a module "b"
    os.mkdir(root)
    os.mkdir(root + "/pkgx")
    with open(root + "/pkgx/__init__.py", "w") as f:
        f.write("TAG = " + repr(tag) + "\n")
    with open(root + "/pkgx/a.py", "w") as f:
        f.write("DATA = bytearray(" + str(BIG) + ")\n")
    with open(root + "/pkgx/b.py", "w") as f:
        f.write("TAG = " + repr(tag) + "\n")


def _rm(root):
    for name in ("a.py", "b.py", "__init__.py"):
        os.remove(root + "/pkgx/" + name)
    os.rmdir(root + "/pkgx")
    os.rmdir(root)


def _forget():
    for k in list(sys.modules):
        if k == "pkgx" or k.startswith("pkgx."):
            del sys.modules[k]


def test_a_base_packages_forgotten_modules_leave_the_heap():
    base = "/tmp/otalink-base-" + os.urandom(4).hex()
    slot = "/tmp/otalink-slot-" + os.urandom(4).hex()
    _tree(base, "base")
    _tree(slot, "slot")
    saved = list(sys.path)
    try:
        sys.path.insert(0, base)
        __import__("pkgx.a")  # the boot sequence's modules, from the base
        __import__("pkgx.b")

        top = sys.modules["pkgx"]  # (what kept the base package referred to)
        _forget()  # boot.py: the slot's agent replaces every module
        sys.path[0] = slot
        __import__("pkgx.b")  # the slot's copy; its "a" is never loaded

        assert sys.modules["pkgx"].TAG == "slot" and top.TAG == "base"
        gc.collect()
        before = gc.mem_alloc()
        loader._strip(top)
        gc.collect()
        freed = before - gc.mem_alloc()
        assert freed >= BIG, ("the base package kept its modules", freed)
        assert "a" not in top.__dict__ and "b" not in top.__dict__
        assert sys.modules["pkgx.b"].TAG == "slot"  # the loaded copy is untouched
    finally:
        sys.path[:] = saved
        _forget()
        _rm(base)
        _rm(slot)


def test_modules_still_loaded_under_their_name_stay():
    # the same package when nothing replaced it (the base agent runs): nothing is stripped
    base = "/tmp/otalink-base-" + os.urandom(4).hex()
    _tree(base, "base")
    saved = list(sys.path)
    try:
        sys.path.insert(0, base)
        __import__("pkgx.a")
        top = sys.modules["pkgx"]
        loader._strip(top)
        assert top.__dict__["a"] is sys.modules["pkgx.a"]
        assert len(top.a.DATA) == BIG
    finally:
        sys.path[:] = saved
        _forget()
        _rm(base)
