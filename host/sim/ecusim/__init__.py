"""ECU runner for the MicroPython unix port: processes, configs, bundles, flash files.

Public API (stable; used by the demo, tests and benches):
    EcuProcess(config, line_path=None, flash_path=None, heapsize=DEFAULT_HEAP, ...)   process.py
    make_ecu_config(ecu_id, hw_id, director_pubkeys, ecu_seed, flash_path, line_path, ...)
    write_ecu_config(config, path)                                            config.py
    build_bundle(modules, entry, selftest) -> bytes; parse_bundle(data)       bundle.py
    build_image(app_modules, app, agent, agent_version) -> bytes (format 2); agent_tree()
    FlashFile(path, geom): slot/raw reads of an emulated flash file           flashfile.py
    board_profile(board) / board_geometry(board)                              config.py
    EXIT_STOP, EXIT_RESET, EXIT_CONFIG: the agent's exit statuses             process.py
    DEFAULT_HEAP (agent alone), APP_HEAP (an application beside it): -X heapsize
"""

from otalink.host.sim.ecusim.bundle import (
    BundleFormatError,
    agent_tree,
    build_bundle,
    build_image,
    bundle_format,
    parse_bundle,
)
from otalink.host.sim.ecusim.config import (
    board_geometry,
    board_profile,
    make_ecu_config,
    write_ecu_config,
)
from otalink.host.sim.ecusim.flashfile import FlashFile
from otalink.host.sim.ecusim.process import (
    APP_HEAP,
    DEFAULT_HEAP,
    EXIT_CONFIG,
    EXIT_RESET,
    EXIT_STOP,
    EcuProcess,
    micropython_exe,
    mpy_path,
)

__all__ = [
    "APP_HEAP",
    "DEFAULT_HEAP",
    "EXIT_CONFIG",
    "EXIT_RESET",
    "EXIT_STOP",
    "BundleFormatError",
    "EcuProcess",
    "FlashFile",
    "agent_tree",
    "board_geometry",
    "board_profile",
    "build_bundle",
    "build_image",
    "bundle_format",
    "make_ecu_config",
    "micropython_exe",
    "mpy_path",
    "parse_bundle",
    "write_ecu_config",
]
