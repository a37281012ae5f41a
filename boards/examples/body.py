# An ECU application for the otalink component (docs/device.md "Writing an ECU application"):
# a body controller - four door switches, the central lock and its motor - beside the update
# agent. The loader imports this module from the running slot and runs `await main(agent)`
# next to the agent's line task.
#
# What it shows of the contract:
#   - a periodic 10 ms task: debounces the door switches, runs the lock motor for MOTOR_MS,
#     calls agent.alive() (the supervisor feeds the watchdog only while it comes);
#   - a trial boot's self-test decides agent.healthy() (the loader calls selftest());
#   - the application channel both ways: a host request locks / unlocks and reads the state,
#     the controller publishes every door or lock change as an event (agent.send, chan 1);
#   - on_offer: defers an update while the lock motor runs ("lock motor moving");
#   - on_activate: waits (bounded by the agent's safe_ms) until the motor has stopped.
# Channel map (host <-> ECU; data are bytes):
#   chan 1  -> state: [doors bitmask (bit i: door i open), locked 0/1, motor ms left (u16 LE)]
#              also the event this ECU sends on every change
#   chan 2  <- b"\x01" lock / b"\x00" unlock -> the state after the command starts the motor
#   chan 3  <- doors bitmask (1 byte): the simulated switch inputs (test and demo control)
#   chan 4  -> stats: worst lateness ms, periods, late periods (3 x u32 LE); b"\x00" resets
import asyncio
import struct
import time

VERSION = "1.0.0"
PERIOD_MS = 10
MOTOR_MS = 300  # a lock motor's travel time
DEBOUNCE = 3  # periods a switch must read the same before it counts (30 ms)

_inputs = [0]  # raw switch inputs (the simulated hardware; chan 3 sets them)
_doors = [0]  # debounced
_count = [0]  # periods the raw inputs differed from the debounced state
_locked = [False]
_motor = [0]  # ms of lock motor travel left
_dirty = [False]  # a change not published yet
_stats = [0, 0, 0]  # worst lateness (ms), periods run, periods later than a period


def _state():
    return struct.pack("<BBH", _doors[0], 1 if _locked[0] else 0, _motor[0])


def selftest():
    # the lock motor's end-stop feedback agrees with the stored lock state (a real controller
    # reads its hall sensor here)
    return _motor[0] == 0


def on_offer(offer):
    # never swap images with the lock motor half way: retry in a second
    if _motor[0]:
        return ("lock motor moving", 1)
    return None


async def go_safe():
    # before the new image is activated: let the motor reach its end stop (the agent bounds
    # this by safe_ms and refuses the activation past it)
    while _motor[0]:
        await asyncio.sleep_ms(PERIOD_MS)
    return True


def on_message(chan, data):
    if chan == 1:
        return _state()
    if chan == 2:
        want = data == b"\x01"
        if want != _locked[0]:
            _locked[0] = want
            _motor[0] = MOTOR_MS
            _dirty[0] = True
        return _state()
    if chan == 3 and len(data) == 1:
        _inputs[0] = data[0] & 0x0F
        return b"ok"
    if chan == 4:
        if data == b"\x00":
            _stats[0] = _stats[1] = _stats[2] = 0
        return struct.pack("<III", _stats[0], _stats[1], _stats[2])
    return None  # not ours: the agent answers E_APP_CHANNEL


def _step(dt):
    # one control period, dt ms after the last: debounce, the motor, auto-lock is the driver's
    # business (not here)
    raw = _inputs[0]
    if raw != _doors[0]:
        _count[0] += 1
        if _count[0] >= DEBOUNCE:
            _doors[0] = raw
            _count[0] = 0
            _dirty[0] = True
    else:
        _count[0] = 0
    if _motor[0]:
        # the motor travels in real time: a late period does not slow it down
        _motor[0] = _motor[0] - dt if _motor[0] > dt else 0
        if not _motor[0]:
            _dirty[0] = True  # end stop reached


async def main(agent):
    agent.on_offer = on_offer
    agent.on_activate = go_safe
    agent.on_message = on_message
    due = time.ticks_add(time.ticks_ms(), PERIOD_MS)
    last = time.ticks_ms()
    while True:
        now = time.ticks_ms()
        late = time.ticks_diff(now, due)
        if late > _stats[0]:
            _stats[0] = late
        if late > PERIOD_MS:
            _stats[2] += 1
        _stats[1] += 1
        due = time.ticks_add(due, PERIOD_MS)
        if time.ticks_diff(now, due) > PERIOD_MS:
            due = time.ticks_add(now, PERIOD_MS)  # fell behind: no burst of catch-up periods
        _step(time.ticks_diff(now, last))
        last = now
        agent.alive()
        if _dirty[0] and agent.send(1, _state()):
            _dirty[0] = False  # (outbox full: published at the next period instead)
        wait = time.ticks_diff(due, time.ticks_ms())
        await asyncio.sleep_ms(wait if wait > 0 else 0)
