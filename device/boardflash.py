# The block device of a real board, from the profile's "device" (flashcfg.open_board_flash
# loads this module for the call and forgets it: on the unix port it is never loaded, so the
# ports' names below are never interned there). Untestable here: the constructors are the
# ports' own; each offers the extended block protocol with erase (device/flash.py).


def open_board_flash(g):
    # The block device of a real board, from the profile's "device" (untestable here: the
    # constructors are the ports' own). Each offers the extended block protocol with erase.
    dev = g.get("device")
    if dev == "rp2.Flash":
        import rp2

        return rp2.Flash()
    if dev == "esp32.Partition":
        import esp32

        found = esp32.Partition.find(esp32.Partition.TYPE_DATA, label=g.get("label", "vfs"))
        if not found:
            raise OSError(19)
        return found[0]
    if dev == "pyb.Flash":
        import pyb

        return pyb.Flash(start=0)
    raise OSError(19)  # ENODEV
