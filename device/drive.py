# The synchronous driver of the agent (agent.poll() loads it): the loader's loop when no
# application task runs (loader._serve), tests and benches. Wait for bytes, handle every
# complete frame, and run the slices of a request back to back, calling agent.on_slice() (the
# loader's watchdog feeding) between them, so a long request (a slot's erase, signing) is not
# taken for a hang. The line task (agent.run()) does the same with the event loop; both use the
# same _next() / _handle() and the request generators.
from otalink.device import agent as _a


def poll(a, timeout_ms):
    n = 0
    if not a.link.wait(timeout_ms) and a.parser is None:
        a.tick()  # at rest and nothing came: the engine stays away
        return 0
    if not a.wake():
        # no room for the engine yet (an application holds the heap): the bytes wait
        _a.time.sleep_ms(timeout_ms)
        a.tick()
        return 0
    while True:
        p = a._next()
        if p is None:
            break
        n += 1
        g = a._handle(p)
        if g is not None:
            g = [g]  # (a box: see finish)
            finish(a, g)
        a._trace(p)
        a.cur = None
        if a.exit is not None:
            break  # (REBOOT answered: the caller resets; a later poll() still answers)
    a.tick()
    return n


def finish(a, box):
    # box: [the request's generator], emptied here, so no frame below holds the generator while
    # its slices run. A generator that has finished keeps its frame (its locals, its module's
    # code) until its last reference goes: held by the caller, BEGIN's first stage (begin.py,
    # the verification's leftovers, ~6 KB) stayed live under the second stage's allocations
    # (the Slots, the ring, the decoder's room) and until the next frame.
    # a request's slices, back to back; an awaitable it yields (the application's on_activate)
    # cannot run without a loop: closed and taken as done
    from otalink.protocol.errors import ProtocolError  # (the engine's: it leaves at rest)

    g = box.pop()
    a.busy = True
    try:
        v = None
        while True:
            try:
                x = g.send(v)
            except StopIteration as e:
                g = e.value  # a stage may end in the next stage's generator (agent._drive)
                if g is None or not hasattr(g, "send"):
                    break
                _a._drop_lazy()
                v = None
                continue
            v = None
            a.progress += 1
            f = a.on_slice
            if f is not None:
                f()
            if x is not None:
                if hasattr(x[0], "close"):
                    x[0].close()
                v = True
    except ProtocolError as e:
        a._error(e.code, e.detail)
    except Exception as e:
        a._internal(e)
    finally:
        a.busy = False
        a.last_rx = _a.time.ticks_ms()  # idle_ms counts from the answer, not the request
        _a._drop_lazy(a)
