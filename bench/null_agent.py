# MicroPython side of bench/bench_component.py (not an otalink module): the null agent. A slot
# image carries it as its agent (entry "null_agent"), so the real loader boots it beside the real
# application on the real flash emulator: the loader's interface and the application contract
# with nothing behind them (no line, no flash, no codec, no crypto). The ECU's live heap then is
# what the loader, the application and the flash emulator hold without the agent; the bench
# subtracts it from the real ECU's (agent_idle_heap_bytes) and adds this module's own heap back
# to the agent's side (null_agent_heap_bytes), so nothing of the agent is counted as loader.
# After DELAY_MS it prints "otalink-null heap=N" (live bytes after a collection) to stdout.
import gc
import time

DELAY_MS = 3000


class Null:
    exit = None
    progress = 0
    parked = True  # the supervisor feeds the watchdog: nothing here can hang
    alive_at = None
    app_state = 0
    memtrace = None
    on_slice = None
    link = None
    on_offer = None
    on_activate = None
    on_message = None
    version = "null"
    safe_ms = 2000

    def __init__(self, b):
        self.trial = b.trial
        self.boot_state = b.boot_state
        self.last_error = b.last_error
        self.fault = b.fault

    def healthy(self, ok=True):
        pass

    def alive(self):
        self.alive_at = time.ticks_ms()

    def send(self, chan, data):
        return True

    def note_fault(self, code):
        pass

    def tick(self):
        pass

    async def run(self):
        import asyncio

        await asyncio.sleep_ms(DELAY_MS)
        gc.collect()
        print("otalink-null heap=" + str(gc.mem_alloc()))
        while True:
            await asyncio.sleep_ms(1000)


def make(b):
    return Null(b)  # (the loader's flash device stays held, as the real agent holds it)
