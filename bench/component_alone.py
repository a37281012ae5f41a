# MicroPython side of bench/bench_component.py (not an otalink module): the example application
# alone, the baseline the agent's idle figures are taken against. asyncio, app.py (on
# MICROPYPATH) and a stub of the agent's contract with nothing behind it; the loader's GC
# threshold. Runs `seconds`, then prints {"heap": live bytes after a collection, "cpu_s_total"}.
#   MICROPYPATH=.frozen:DIR micropython component_alone.py SECONDS
import asyncio
import gc
import json
import sys

gc.threshold(1024)  # as the loader sets it
import app  # noqa: E402


class Stub:
    trial = False
    version = ""
    boot_state = 0
    last_error = 0
    fault = 0
    safe_ms = 2000
    on_offer = None
    on_activate = None
    on_message = None

    def healthy(self, ok=True):
        pass

    def alive(self):
        pass

    def send(self, chan, data):
        return True


def _cpu():
    with open("/proc/self/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / 100  # USER_HZ on Linux


async def main(seconds):
    task = asyncio.create_task(app.main(Stub()))  # kept: the application runs throughout
    await asyncio.sleep_ms(1000)
    gc.collect()
    heap = gc.mem_alloc()
    await asyncio.sleep_ms(int(seconds * 1000))
    print(json.dumps({"heap": heap, "cpu_s_total": _cpu(), "app_running": not task.done()}))


asyncio.run(main(float(sys.argv[1])))
