# The engine's coming and going (docs/device.md "Agent"; docs/adr/0007-ecu-component.md
# "Rest"), loaded for agent.wake() and for engine.rest() and dropped right after either, so an
# awake agent (a transfer above all) holds engine.py's methods and not this code (~1.6 KiB of
# heap on the unix port):
#
#   wake(agent)   the config read again (an agent the loader made drops it at rest: its keys
#                 and the ECU's seed leave RAM), the frame reader (max_payload) and the reply
#                 writer made, engine.py's methods installed on the Agent class (agent._error(...)
#                 etc. for every request module)
#   strip(agent)  the reverse (engine.rest, when nothing is in flight; a wake without room):
#                 the methods, the reader, the writer and the engine's modules leave
import time

from otalink.device import agent as _a
from otalink.device import engine
from otalink.protocol.framing import FrameReader, FrameWriter

try:
    from micropython import const
except ImportError:  # CPython (tooling only)

    def const(x):
        return x


_OUT_PAYLOAD = const(64)  # ACK / RESULT / ERROR / PROGRESS (<= 26 bytes)
_ENGINE = const(("otalink.device", ("engine",)))
_FRAMING = const(("otalink.protocol", ("framing",)))
_START = const(("otalink.device", ("start", "config")))
_ERRORS = const(("otalink.protocol", ("errors",)))
# the config keys the awake agent's requests read (begin.py, commands.py, report.py)
_AWAKE = const(("ecu_id", "hw_id", "ecu_seed", "director_keys", "command_keys", "threshold",
                "time_floor"))  # fmt: skip
# the names wake() installs on the Agent class (one constant tuple: no pairs to allocate)
_METHODS = const(("_slots", "_done", "_op", "_code", "_unload", "_reset", "_send_view", "_small",
                  "_error", "_result", "_internal", "_next", "_handle", "_trace"))  # fmt: skip


def _reread(a):
    # What an agent made by the loader dropped at rest: its config (keys, the ECU's seed), read
    # again (start.py): only the keys its requests read (_AWAKE).
    st = _a._lazy("otalink.device.start")
    got = st.settings(a.path, _AWAKE)
    _a._drop(_START)
    if got is None:
        raise ValueError("config")  # (the loader's next boot reports it and stops)
    a.cfg = got[0]


def wake(a):
    # The config when it was dropped, then the reader (its max_payload buffer is the largest
    # block: allocated early it lands low), then the methods. No room for all of it (an
    # application holds the heap): nothing of it stays, the MemoryError goes to agent.wake().
    try:
        if a.path is not None and a.cfg is None:
            _reread(a)
        a.parser = FrameReader(a.max_payload)
        a.out = FrameWriter(_OUT_PAYLOAD)
        a.rx_at = time.ticks_ms()
        cls = type(a)
        g = engine.__dict__
        for name in _METHODS:
            setattr(cls, name, g[name])
    except MemoryError:
        strip(a)
        raise


def strip(a):
    # The engine leaves (rest, or a wake without room): its methods, reader, writer, modules.
    cls = type(a)
    for name in _METHODS:
        if hasattr(cls, name):
            # None first: a class attribute deleted alone keeps its value in the class's
            # table, where the GC still finds it (the engine's code would never leave the heap)
            setattr(cls, name, None)
            delattr(cls, name)
    a.parser = None
    a.out = None
    a.cur = None
    m = a.m  # the shortcut parsers' output may hold views of the reader's buffer
    m[0] = m[1] = m[2] = m[3] = m[4] = m[5] = m[6] = 0
    if a.path is not None:
        a.cfg = None  # (the keys and the ECU's seed leave RAM too; the geometry stays: ops.py)
    _a._drop_lazy(a)
    _a._drop(_ENGINE)
    _a._drop(_FRAMING)
    # (every module that holds ProtocolError leaves with the engine, or imports it per call:
    # aloop.drive, drive.finish; the next wake imports one class for all of them again)
    _a._drop(_ERRORS)
