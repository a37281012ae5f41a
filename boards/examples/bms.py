# An ECU application for the otalink component (docs/device.md "Writing an ECU application"):
# a battery management system's control loop beside the update agent. The loader imports this
# module from the running slot and runs `await main(agent)` next to the agent's line task.
#
# What it shows of the contract:
#   - a periodic 10 ms task (the control loop), its worst lateness kept as a figure;
#   - agent.alive() every period: the supervisor feeds the watchdog only while it comes;
#   - on a trial boot, the self-test decides agent.healthy(): only then can the update be
#     confirmed (a failing self-test rolls the update back at once);
#   - on_offer: the application defers an update while the contactor is closed (the host sees
#     DEFER "contactor closed" and retries later);
#   - on_activate: before the new image is activated (or the ECU reset), the contactor opens:
#     outputs safe within agent.safe_ms, else the activation is refused (E_NOT_SAFE);
#   - the application channel: the state of charge published on channel 1 every second
#     (agent.send), requests answered by on_message:
#       chan 1  -> soc (u16 permille)          chan 2 -> stats: max lateness ms, periods, late
#                                              (b"\x00": the stats start over)
#       chan 3  <- b"\x01" / b"\x00": close / open the contactor (test and demo control)
#       chan 4  <- n (u32): allocate n bytes of live data (the heap figure's application)
#       chan 5  -> the live heap after a collection (u32); with a u32 delay in ms: measured that
#                  much later by the control loop itself, so the agent is at rest by then (the
#                  bench's idle heap figure: a request on the line wakes the agent's engine)
#       chan 6  -> that delayed measurement (u32; 0 while it is still due)
import asyncio
import gc
import struct
import time

# (struct formats as bytes literals: a short str literal is an interned name, kept in RAM for
# good on ports that load code into RAM; a bytes literal is a constant of this module)

VERSION = "1.0.0"
PERIOD_MS = 10
PUBLISH_MS = 1000

_soc = [800]  # permille
_contactor = [False]
_stats = [0, 0, 0]  # worst lateness (ms), periods run, periods later than a period
_live = []  # application data the heap figure holds (chan 4)
_probe = [0, 0]  # chan 5 with a delay: [due ticks (made odd: 0 is none), live heap then]


def selftest():
    # sensors readable, limits sane (a real BMS reads its cell monitors here)
    return 0 <= _soc[0] <= 1000


def on_offer(offer):
    # an update is offered (BEGIN verified): defer while power flows through the contactor
    if _contactor[0]:
        return ("contactor closed", 5)
    return None


async def go_safe():
    # the image is about to be activated: open the contactor, wait for it to settle
    _contactor[0] = False
    await asyncio.sleep_ms(20)
    return True


def on_message(chan, data):
    if chan == 1:
        return struct.pack(b"<H", _soc[0])
    if chan == 2:
        if data == b"\x00":
            _stats[0] = _stats[1] = _stats[2] = 0
        return struct.pack(b"<III", _stats[0], _stats[1], _stats[2])
    if chan == 3:
        _contactor[0] = data == b"\x01"
        return b"ok"
    if chan == 4:
        n = struct.unpack(b"<I", data)[0]
        _live.append(bytearray(n))
        return b"ok"
    if chan == 5:
        if data:
            _probe[0] = time.ticks_add(time.ticks_ms(), struct.unpack(b"<I", data)[0]) | 1
            _probe[1] = 0
            return b"ok"
        gc.collect()
        return struct.pack(b"<I", gc.mem_alloc())
    if chan == 6:
        return struct.pack(b"<I", _probe[1])
    return None  # not ours: the agent answers E_APP_CHANNEL


async def main(agent):
    agent.on_offer = on_offer
    agent.on_activate = go_safe
    agent.on_message = on_message
    if agent.trial:
        agent.healthy(selftest())
    due = time.ticks_add(time.ticks_ms(), PERIOD_MS)
    publish = time.ticks_add(time.ticks_ms(), PUBLISH_MS)
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
        # the control step: discharge slowly while the contactor is closed
        if _contactor[0] and _soc[0] > 0:
            _soc[0] -= 1
        agent.alive()
        if _probe[0] and time.ticks_diff(now, _probe[0]) >= 0:
            _probe[0] = 0
            gc.collect()
            _probe[1] = gc.mem_alloc()
            try:
                import micropython

                micropython.qstr_info()  # the interned names then, on stdout (the bench reads it)
            except (ImportError, AttributeError):
                pass
        if time.ticks_diff(now, publish) >= 0:
            publish = time.ticks_add(publish, PUBLISH_MS)
            agent.send(1, struct.pack(b"<H", _soc[0]))  # False when the outbox is full: dropped
        wait = time.ticks_diff(due, time.ticks_ms())
        await asyncio.sleep_ms(wait if wait > 0 else 0)
