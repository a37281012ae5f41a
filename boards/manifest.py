# MicroPython freeze manifest: the otalink ECU agent frozen into a custom firmware build, so its
# bytecode runs from flash (no RAM for module code, nothing to copy with mpremote):
#
#   cd micropython/ports/rp2 && make BOARD=RPI_PICO FROZEN_MANIFEST=$OTALINK/boards/manifest.py
#   cd micropython/ports/esp32 && make BOARD=ESP32_GENERIC BOARD_VARIANT=OTA \
#                                       FROZEN_MANIFEST=$OTALINK/boards/manifest.py
#   cd micropython/ports/stm32 && make BOARD=PYBV11 FROZEN_MANIFEST=$OTALINK/boards/manifest.py
#
# Then `otalink device deploy --frozen ...` writes only the config, keys and main.py.
# The manifest runs with its own folder (boards/) as the working directory (MicroPython's
# tools/manifestfile.py). The agent's sources live in protocol/ and device/ but import as
# otalink.protocol / otalink.device, and a manifest freezes files under the path they have on
# disk, so we stage an otalink/ folder of symlinks first (followed by the manifest walker).
import os

# The board's own frozen modules first (rp2's _boot.py mounts the filesystem, for example).
include("$(BOARD_DIR)/manifest.py")

_STAGE = os.path.join("..", "build", "freeze")
_PKG = os.path.join(_STAGE, "otalink")
os.makedirs(_PKG, exist_ok=True)
with open(os.path.join(_PKG, "__init__.py"), "w") as _f:
    _f.write("# otalink package marker (frozen by boards/manifest.py)\n")
for _name in ("protocol", "device"):
    _link = os.path.join(_PKG, _name)
    if not os.path.islink(_link):
        os.symlink(os.path.join("..", "..", "..", _name), _link)

# otalink/__init__.py, otalink/protocol/*.py, otalink/device/*.py -> frozen bytecode.
package("otalink", base_path=_STAGE)
