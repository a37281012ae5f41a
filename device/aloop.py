# The agent's line task beside an application (device/agent.py: agent.run() loads this module; an
# ECU without an application task runs agent.poll() in the loader's loop instead):
#   await run(agent)      parked on the line (no timeout, no spinning: the supervisor calls tick()
#                         for the timeouts), each frame handled, the application runs between two
#                         frames
#   await drive(agent, g) a request's slices with the loop running between them
import sys

from otalink.device import agent as _a

try:
    from micropython import const
except ImportError:  # CPython (tooling only)

    def const(x):
        return x


_TIMEOUT = const(-1)  # agent._TIMEOUT


async def drive(a, box):
    # box: [the request's generator], emptied here (drive.finish says why)
    # a request's slices with the loop running between them; a slice may yield (awaitable,
    # timeout_ms): the application's on_activate, awaited with its bound
    import asyncio

    from otalink.protocol.errors import ProtocolError

    g = box.pop()
    a.busy = True
    try:
        v = None
        while True:
            try:
                x = g.send(v)
            except StopIteration as e:
                # a stage may end in the next stage's generator (BEGIN: the transfer loads
                # once the verification's modules left the heap)
                g = e.value
                if g is None or not hasattr(g, "send"):
                    break
                _a._drop_lazy()
                v = None
                continue
            v = None
            a.progress += 1
            if x is None:
                await asyncio.sleep_ms(0)
                continue
            try:
                v = await asyncio.wait_for_ms(x[0], x[1])
            except asyncio.TimeoutError:
                v = _TIMEOUT
            except Exception as e:
                sys.print_exception(e)
                v = False
    except ProtocolError as e:
        a._error(e.code, e.detail)
    except Exception as e:
        a._internal(e)
    finally:
        a.busy = False
        a.last_rx = _a.time.ticks_ms()  # idle_ms counts from the answer, not the request
        _a._drop_lazy(a)


async def run(a):
    # Parked on the line (no timeout, no spinning: tick() handles the timeouts), each frame
    # handled, the application runs between two frames.
    import asyncio
    from asyncio import core

    s = a.link.stream()
    woke = False
    while a.exit is None:
        a.progress += 1
        p = None
        if a.parser is not None:
            p = a._next()
        elif woke:
            if not a.wake():  # input at rest: the engine comes back (the bytes wait meanwhile)
                woke = False
                await asyncio.sleep_ms(100)  # no room for it yet: the application runs
                continue
            p = a._next()
        if p is None:
            if woke and not a.got:
                # woken with nothing to read: the line hung up (POLLHUP with POLLIN on a
                # closed pty master); pause instead of spinning
                woke = False
                await asyncio.sleep_ms(50)
                continue
            a.parked = True
            yield core._io_queue.queue_read(s)
            a.parked = False
            woke = True
            continue
        woke = False
        g = a._handle(p)
        if g is not None:
            g = [g]  # (a box: see drive)
            await drive(a, g)
        a._trace(p)
        a.cur = None
        await asyncio.sleep_ms(0)
