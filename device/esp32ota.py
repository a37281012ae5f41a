# ESP32 firmware OTA behind the same Slots logic: the two slots are the app partitions ota_0 /
# ota_1 (esp32.Partition: the extended block-device protocol, 4096-byte blocks), the state
# records live in a small data partition (label "otastate", >= 2 sectors), and the bootloader's
# own rollback (CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE) is driven through three calls:
#   activate -> next.set_boot()                     (bootloader boots it once, pending verify)
#   confirm  -> Partition.mark_app_valid_cancel_rollback()
#   revert   -> fallback.set_boot()                 (and the agent resets)
# A firmware that never gets confirmed is rolled back by the bootloader at the next reset;
# Slots.boot() sees that through hooks.running() and records E_BOOT_CRASH.
# Import-safe everywhere: `esp32` is imported only inside the functions (it exists on ESP32 only).
from otalink.device.flash import Region


class Esp32Hooks:
    def __init__(self, parts):
        self.parts = parts  # (ota_0, ota_1) esp32.Partition objects

    def _index(self, part):
        info = part.info()
        for i in (0, 1):
            if self.parts[i].info()[2] == info[2]:  # same flash address
                return i
        return None

    def running(self):
        import esp32

        return self._index(esp32.Partition(esp32.Partition.RUNNING))

    def activated(self, slot):
        self.parts[slot].set_boot()

    def confirmed(self, slot):
        import esp32

        esp32.Partition.mark_app_valid_cancel_rollback()

    def reverted(self, slot):
        # slot = the one to run now
        self.parts[slot].set_boot()


def find_parts(labels=("ota_0", "ota_1"), state_label="otastate"):
    import esp32

    P = esp32.Partition
    apps = []
    for lab in labels:
        found = P.find(P.TYPE_APP, label=lab)
        if not found:
            raise OSError(19)
        apps.append(found[0])
    st = P.find(P.TYPE_DATA, label=state_label)
    if not st:
        raise OSError(19)
    return apps[0], apps[1], st[0]


def make_slots(fw):
    # Slots over the OTA partitions; fw = the board profile's "firmware" section
    from otalink.device.slots import Slots

    a, b, state = find_parts(tuple(fw.get("partitions", ("ota_0", "ota_1"))),
                             fw.get("state_label", "otastate"))  # fmt: skip
    es = fw.get("erase_size", 4096)
    size = min(a.info()[3], b.info()[3])
    nstate = fw.get("state_sectors", 2)
    geom = {
        "size": size,
        "erase_size": es,
        "write_size": fw.get("write_size", 16),
        "slot_size": size,
        "state_offset": 0,
        "state_sectors": nstate,
        "slot_offsets": [0, 0],
        "trial_boots": fw.get("trial_boots", 1),  # the bootloader gives a firmware one boot
        "deflate_wbits": fw.get("deflate_wbits", 10),
        "max_data": fw.get("max_data", 4096),
    }
    regions = (
        Region(state, 0, nstate * es, es),
        Region(a, 0, size, es),
        Region(b, 0, size, es),
    )
    return Slots(None, geom, regions=regions, hooks=Esp32Hooks((a, b)))


def boot(slots):
    # At startup of a firmware: apply the decision table; a firmware that reached this point
    # runs, so on trial it passed its self-test (the host confirms it). If the table chose a
    # different slot than the bootloader ran, reset into it.
    slot, action, reason = slots.boot()
    if slot >= 0 and slot != slots.hooks.running():
        import machine

        machine.reset()
    slots.trial_passed()
    return slot, action, reason
