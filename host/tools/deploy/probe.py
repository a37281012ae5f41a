"""What deploy asks a board before writing anything: MicroPython version, .mpy ABI, the sha256
of every agent file already there, and the unix emulator's wiring.

``probe_code(lib, extra, wiring)`` is the MicroPython code run in the raw REPL; it prints one
repr()'d dict, which ``BoardRepl.eval_probe`` validates as :class:`BoardProbe` (whatever sits on
the port may answer anything: a wrong shape is a BoardExecError, never a traceback).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from otalink.host.validation import Uint
from pydantic import BaseModel, Field, StrictInt

_PROBE = """
import sys, os, binascii
try:
    import hashlib
except ImportError:
    hashlib = None
def _h(p):
    if hashlib is None:
        return ''
    try:
        f = open(p, 'rb')
    except OSError:
        return None
    h = hashlib.sha256()
    b = bytearray(512)
    mv = memoryview(b)
    while True:
        n = f.readinto(b)
        if not n:
            break
        h.update(mv[:n])
    f.close()
    return binascii.hexlify(h.digest()).decode()
def _walk(d, out):
    try:
        it = list(os.ilistdir(d))
    except OSError:
        return
    for e in it:
        p = d + '/' + e[0]
        if e[1] & 0x4000:
            _walk(p, out)
        else:
            out[p] = _h(p)
_f = {}
_walk(%(lib)r + '/otalink', _f)
for _p in %(extra)r:
    _f[_p] = _h(_p)
try:
    _w = open(%(wiring)r).read()
except OSError:
    _w = None
print(repr({'mpy': getattr(sys.implementation, '_mpy', None),
 'version': tuple(sys.implementation.version[:3]), 'platform': sys.platform,
 'files': _f, 'wiring': _w}))
"""


class BoardProbe(BaseModel):
    """What ``probe_code`` prints on the board (validated: any device may answer on the port)."""

    mpy: StrictInt | None = None  # sys.implementation._mpy
    version: Annotated[tuple[Uint, ...], Field(min_length=3)] = (0, 0, 0)
    platform: str = "?"
    files: dict[str, str | None] = {}  # path -> sha256 hex (None: unreadable)
    wiring: str | None = None  # the unix board's wiring file (JSON text)

    def wiring_doc(self) -> dict[str, Any] | None:
        try:
            doc = json.loads(self.wiring) if self.wiring else None
        except ValueError:
            doc = None
        return doc if isinstance(doc, dict) else None


def probe_code(lib: str, extra: list[str], wiring: str) -> str:
    """The probe for agent files under ``lib``/otalink, the ``extra`` files and ``wiring``."""
    return _PROBE % {"lib": lib, "extra": extra, "wiring": wiring}
