# The supervisor of an ECU with an application (part of the immutable loader: device/loader.py
# imports this base copy after the boot, before the slot's code runs in the event loop):
#   await run(b) -> agent._RUN_STOP | _RUN_RESET    the agent's and the application's tasks and
#                                                  the watchdog's feeding (loader.py says how)
import sys

try:
    from micropython import const
except ImportError:  # CPython (tooling only)

    def const(x):
        return x


_RUN_RESET = const(1)  # agent._RUN_RESET
_E_NOT_CONFIRMED = const(52)
_E_APP_CRASH = const(54)
_E_APP_MEMORY = const(55)
_E_AGENT_FAILED = const(57)
_APP_FAILED = const(3)
_STEP_MS = const(50)  # the supervisor's step: how soon an agent's exit is noticed


def _feed(dog):
    # loader._feed (a copy: the loader may run as __main__, not importable as itself)
    if dog is None:
        return
    try:
        if hasattr(dog, "feed"):
            dog.feed()
        else:
            dog.write(b".")
    except OSError:
        pass


# st, the supervisor's view of its two tasks: a list, not a class (no names to intern):
_ERR = const(0)  # st[0]: the fault the application ended with (E_APP_CRASH / E_APP_MEMORY), 0
_AGENT_ERR = const(1)  # st[1]: the exception the agent's task ended with, None while it runs


async def _app(b, st):
    import asyncio

    a = b.agent
    m = b.app_mod
    try:
        f = getattr(m, "main", None)
        if f is not None:
            await f(a)
        else:
            p = m.poll
            ms = b.poll_ms
            while True:
                p(a)
                a.alive()  # a returning poll() is the poll form's heartbeat
                await asyncio.sleep_ms(ms)
        print("otalink: the application's main() returned")
        st[_ERR] = _E_APP_CRASH
    except MemoryError:
        st[_ERR] = _E_APP_MEMORY
    except Exception as e:
        sys.print_exception(e)
        st[_ERR] = _E_APP_CRASH


async def _agent(b, st):
    try:
        await b.agent.run()
    except Exception as e:  # a bug in the agent: reset (a trial records it)
        sys.print_exception(e)
        st[_AGENT_ERR] = e


async def run(b):
    import asyncio
    import time

    a = b.agent
    dog = b.dog
    st = [0, None]
    asyncio.create_task(_agent(b, st))
    app = asyncio.create_task(_app(b, st))
    every = b.wdt_ms // 4
    _feed(dog)  # (the boot's imports are behind us)
    t0 = last_feed = time.ticks_ms()
    seen = -1
    alive_ms = b.alive_ms
    while True:
        await asyncio.sleep_ms(_STEP_MS)
        a.tick()
        if a.exit is not None:
            return a.exit
        now = time.ticks_ms()
        if st[_AGENT_ERR] is not None:
            if b.trial:
                a.note_fault(_E_AGENT_FAILED)
            return _RUN_RESET
        if st[_ERR]:
            code = st[_ERR]
            st[_ERR] = 0
            app = None
            repeat = b.fault == _E_APP_CRASH or b.fault == _E_APP_MEMORY
            a.note_fault(code)
            a.app_state = _APP_FAILED
            if b.trial or not repeat:
                print("otalink: application fault %d - reset" % code)
                return _RUN_RESET
            print("otalink: application fault %d again: the agent runs alone" % code)
        if time.ticks_diff(now, last_feed) >= every:
            agent_ok = a.progress != seen or a.parked
            seen = a.progress
            at = a.alive_at
            app_ok = app is None or at is None or time.ticks_diff(now, at) <= alive_ms
            if agent_ok and app_ok:
                _feed(dog)
            last_feed = now
        if b.trial and a.trial and time.ticks_diff(now, t0) > b.trial_ms:
            print("otalink: no CONFIRM within trial_ms - reset")
            a.note_fault(_E_NOT_CONFIRMED)  # the reason when the trial runs out of boots
            return _RUN_RESET
