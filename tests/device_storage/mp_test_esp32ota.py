# The ESP32 firmware-OTA adapter (device/esp32ota.py) against a stand-in `esp32` module: the real
# one exists only on ESP32. The stand-in keeps what the adapter relies on: Partition.find/info,
# the block protocol (backed by the NOR emulator), set_boot, mark_app_valid_cancel_rollback and a
# RUNNING partition that a simulated bootloader picks at each "reset".
# mpy-heapsize: 2m
import hashlib
import os
import sys

from otalink.device.flash import NorFlash
from otalink.protocol import codes as C

ES = 4096
LAYOUT = {"otastate": (1, 0, 2 * ES), "ota_0": (0, 2 * ES, 16 * ES), "ota_1": (0, 18 * ES, 16 * ES)}


class Chip:
    flash = None
    running = "ota_0"
    boot_next = None
    valid = True
    calls = []


class Partition:
    RUNNING = -1
    TYPE_APP = 0
    TYPE_DATA = 1

    def __init__(self, which):
        self.label = Chip.running if which == Partition.RUNNING else which
        self.type, self.base, self.size = LAYOUT[self.label]

    @staticmethod
    def find(type=None, label=None):
        t = LAYOUT.get(label)
        return [Partition(label)] if t is not None and t[0] == type else []

    def info(self):
        return (self.type, 0, self.base, self.size, self.label, False)

    def readblocks(self, block, buf, off=0):
        Chip.flash.readblocks(self.base // ES + block, buf, off)

    def writeblocks(self, block, buf, off=None):
        Chip.flash.writeblocks(self.base // ES + block, buf, off)

    def ioctl(self, op, arg):
        if op == 6:
            return Chip.flash.ioctl(6, self.base // ES + arg)
        return Chip.flash.ioctl(op, arg)

    def set_boot(self):
        Chip.calls.append(("set_boot", self.label))
        Chip.boot_next = self.label

    @staticmethod
    def mark_app_valid_cancel_rollback():
        Chip.calls.append(("valid", Chip.running))
        Chip.valid = True


class Esp32Module:
    pass


esp32 = Esp32Module()
esp32.Partition = Partition
sys.modules["esp32"] = esp32


def reset():
    # the bootloader: boot the new partition once; roll back if it was never marked valid
    if Chip.boot_next and Chip.boot_next != Chip.running:
        Chip.prev = Chip.running
        Chip.running = Chip.boot_next
        Chip.valid = False
    elif not Chip.valid:
        Chip.running = Chip.prev
        Chip.boot_next = Chip.prev
        Chip.valid = True


def setup():
    path = "/tmp/otalink-esp32-" + "".join(f"{b:02x}" for b in os.urandom(6)) + ".bin"
    Chip.flash = NorFlash(path, 34 * ES, ES, 16)
    Chip.running = "ota_0"
    Chip.boot_next = None
    Chip.valid = True
    Chip.calls = []
    return path


def boot():
    from otalink.device import esp32ota

    s = esp32ota.make_slots({"partitions": ["ota_0", "ota_1"], "write_size": 16})
    return s, esp32ota.boot(s)


def stage_firmware(s, version, rc):
    fw = bytes((i * rc + 7) & 0xFF for i in range(20000))
    sha = hashlib.sha256(fw).digest()
    assert s.begin(sha, len(fw), sha, len(fw), 0, version, rc, 1) == 0
    mv = memoryview(fw)
    off = 0
    while off < len(fw):
        off = s.write(off, mv[off : off + 2048])
    assert s.finish() == C.OK
    assert s.activate() == C.OK


def test_firmware_update_confirmed():
    path = setup()
    try:
        s, d = boot()
        assert d[0] == -1  # factory firmware, no slot recorded yet
        stage_firmware(s, "fw2", 2)
        assert Chip.calls == [("set_boot", "ota_1")]
        reset()
        s, d = boot()
        assert d[0] == 1 and s.report()[3][1][0] == C.SLOT_TRIAL
        assert s.confirm() == C.OK
        assert Chip.calls[-1] == ("valid", "ota_1") and Chip.valid
        reset()
        s, d = boot()
        assert d[0] == 1 and s.report()[1] == C.BOOT_NORMAL and s.release_floor == 2
    finally:
        os.remove(path)


def test_unconfirmed_firmware_rolled_back_by_bootloader():
    path = setup()
    try:
        s, d = boot()
        stage_firmware(s, "fw2", 2)
        reset()
        s, d = boot()
        assert d[0] == 1
        reset()  # never confirmed: the bootloader goes back to ota_0
        assert Chip.running == "ota_0"
        s, d = boot()
        active, boot_state, last_error, slots, _tb = s.report()
        assert (active, boot_state, last_error) == (0, C.BOOT_REVERTED, C.E_BOOT_CRASH)
        assert slots[1][0] == C.SLOT_REJECTED
    finally:
        os.remove(path)
