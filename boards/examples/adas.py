# An ECU application for the otalink component (docs/device.md "Writing an ECU application"):
# a driver-assistance ECU's sensor fusion, written in the POLL FORM (no asyncio): the loader
# calls poll(agent) every poll_ms (ECU config, default 50 ms); each poll() that returns is the
# heartbeat the supervisor feeds the watchdog on, so it must return quickly (bounded: one
# fusion step, no loop that waits for anything).
#
# What it shows of the contract:
#   - the poll form: one fusion tick per call (radar and camera ranges to the lead object,
#     fused with fixed weights and smoothed), state preallocated at import;
#   - a trial boot's self-test (selftest(), called by the loader): both sensors plausible;
#   - on_offer: defers an update while the assist is ACTIVE ("assist active", retry in 10 s);
#   - on_activate (a plain function, not a coroutine): the safe state - the assist disengages,
#     the steering torque request goes to zero - done at once, so it returns True;
#   - the application channel: the fused range published every PUBLISH_TICKS ticks, requests
#     answered by on_message.
# Channel map (host <-> ECU; data are bytes):
#   chan 1  -> [fused range cm (u16 LE), active 0/1, torque request (i8)]; also the event
#   chan 2  <- b"\x01" engage / b"\x00" disengage the assist -> b"ok"
#   chan 3  <- radar cm, camera cm (2 x u16 LE): the simulated sensor inputs
#   chan 4  -> ticks run (u32 LE)
import struct

VERSION = "1.0.0"
PUBLISH_TICKS = 10  # every 10 ticks (0.5 s at the default poll_ms)
W_RADAR = 3  # fusion weights (radar ranges better, the camera classifies)
W_CAMERA = 1
FOLLOW_CM = 3000  # the assist asks for torque below this range

_radar = [4000]  # cm, the simulated inputs (chan 3)
_camera = [4200]
_fused = [4000]  # cm, smoothed
_active = [False]
_torque = [0]  # the output: a steering torque request, -100..100 (0 = none)
_ticks = [0]


def _report():
    return struct.pack("<HBb", _fused[0], 1 if _active[0] else 0, _torque[0])


def selftest():
    # both sensors answer with a plausible range
    return 0 < _radar[0] < 25000 and 0 < _camera[0] < 25000


def on_offer(offer):
    # never take an update while the assist is engaged
    if _active[0]:
        return ("assist active", 10)
    return None


def safe_state():
    # disengage: no torque request leaves this ECU any more (immediate, so no coroutine)
    _active[0] = False
    _torque[0] = 0
    return True


def on_message(chan, data):
    if chan == 1:
        return _report()
    if chan == 2:
        _active[0] = data == b"\x01"
        if not _active[0]:
            _torque[0] = 0
        return b"ok"
    if chan == 3 and len(data) == 4:
        _radar[0], _camera[0] = struct.unpack("<HH", data)
        return b"ok"
    if chan == 4:
        return struct.pack("<I", _ticks[0])
    return None  # not ours: the agent answers E_APP_CHANNEL


def poll(agent):
    if _ticks[0] == 0:  # the first call: register the handlers
        agent.on_offer = on_offer
        agent.on_activate = safe_state
        agent.on_message = on_message
    _ticks[0] += 1
    # one fusion tick: weighted mean of the two ranges, then a first-order filter (1/4)
    raw = (W_RADAR * _radar[0] + W_CAMERA * _camera[0]) // (W_RADAR + W_CAMERA)
    _fused[0] += (raw - _fused[0]) // 4
    if _active[0] and _fused[0] < FOLLOW_CM:
        _torque[0] = min(100, (FOLLOW_CM - _fused[0]) // 10)
    else:
        _torque[0] = 0
    if _ticks[0] % PUBLISH_TICKS == 0:
        agent.send(1, _report())  # False when the outbox is full: this one is dropped
