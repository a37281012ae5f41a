# MicroPython side of bench/bench_device.py (run under the unix port with build/mpy on the path).
#   micropython bench_device_mp.py verify N [LIVE [THRESHOLD]]
#       -> {"verify_ms": [...], "sign_ms", "keygen_ms", "cold_verify_ms", "live_bytes"}
#       LIVE: first fill the heap with live objects up to LIVE bytes (the agent's live heap when
#       it verifies), THRESHOLD: gc.threshold as the agent sets it (device/main.py: 1 KiB), so
#       the collections a verification triggers cost what they cost in the agent
#   micropython bench_device_mp.py verifyroom
#       -> {"room_bytes"}: the least free heap (after a collection) in which one verification
#       still succeeds, found by filling the heap until it fails: its transient peak (big-int
#       temporaries, which the agent's memory trace does not sample), fragmentation included
#   micropython bench_device_mp.py datapath CONFIG.json FRAMES.bin
#       FRAMES.bin = BEGIN frame, DATA frames, END frame (made on the host). The real Session and
#       Slots (flash emulator included) consume them from an in-memory link; the time spent on the
#       DATA frames is the device's processing cost (no pty, no host in the figure).
#       -> {"begin_ms", "data_us", "data_frames", "wire_bytes", "end_ms", "replies", "codes"}
import gc
import json
import sys
import time


def _ms(t0):
    return time.ticks_diff(time.ticks_us(), t0) / 1000


def _ballast(live):
    # live objects up to `live` bytes of heap (small blocks, as the agent's heap holds)
    keep = []
    gc.collect()
    while gc.mem_alloc() < live:
        keep.append(bytearray(240))
        if not len(keep) & 15:
            gc.collect()
    return keep


def bench_verify(n, live=0, threshold=0):
    # both ed25519 modules loaded before the heap is filled to `live` (the agent's live heap
    # around its verification, their code included): counted once, as in the agent
    from otalink.device import ed25519, ed25519v  # noqa: F401

    keep = _ballast(live) if live else None
    if threshold:
        gc.threshold(threshold)
    gc.collect()
    live_now = gc.mem_alloc()
    seed = bytes(range(32))
    msg = bytes(range(256)) + bytes(44)  # ~ an install instruction
    t0 = time.ticks_us()
    key = ed25519.SigningKey(seed)
    keygen = _ms(t0)
    t0 = time.ticks_us()
    sig = key.sign(msg)
    sign = _ms(t0)
    # cold: the first verify in a process builds the base-point table
    t0 = time.ticks_us()
    ok = ed25519.verify(key.public, msg, sig)
    cold = _ms(t0)
    times = []
    for _ in range(n):
        gc.collect()
        t0 = time.ticks_us()
        ok = ed25519.verify(key.public, msg, sig) and ok
        times.append(_ms(t0))
    if not ok:
        raise SystemExit("verify failed")
    return {"verify_ms": times, "sign_ms": sign, "keygen_ms": keygen, "cold_verify_ms": cold,
            "live_bytes": live_now, "ballast_blocks": len(keep) if keep else 0}  # fmt: skip


def bench_verify_room():
    from otalink.device import ed25519

    key = ed25519.SigningKey(bytes(range(32)))
    msg = bytes(range(256)) + bytes(44)
    sig = key.sign(msg)
    pub = key.public
    key = None
    keep = []
    room = None
    for size in (1984, 240):  # coarse steps, then fine ones from the last that worked
        while True:
            gc.collect()
            free = gc.mem_free()
            try:
                ok = ed25519.verify(pub, msg, sig)
            except MemoryError:
                ok = False
            if not ok:
                break
            room = free
            try:
                keep.append(bytearray(size))
            except MemoryError:  # no room for another block of this size: go finer
                break
        if keep:
            keep.pop()
    if room is None:
        raise SystemExit("verify failed")
    return {"room_bytes": room, "blocks": len(keep)}


class MemLink:
    # The link adapter interface (device/link.py) over a preloaded byte string.
    def __init__(self, data):
        self.mv = memoryview(data)
        self.pos = 0
        self.limit = 0  # bytes released to the reader so far
        self.out = 0
        self.replies = []

    def wait(self, timeout_ms):
        return self.pos < self.limit

    def readinto(self, buf, n):
        k = self.limit - self.pos
        if k > n:
            k = n
        if k <= 0:
            return 0
        buf[:k] = self.mv[self.pos : self.pos + k]
        self.pos += k
        return k

    def write(self, buf, n, timeout_ms=0):
        self.out += n
        self.replies.append(buf[6] if n > 6 else 0)  # payload's array head: enough to count

    def close(self):
        pass


def bench_datapath(cfg_path, frames_path):
    from otalink.device import config
    from otalink.device.agent import Agent
    from otalink.device.flash import open_flash
    from otalink.device.slots import Slots

    cfg = config.load(cfg_path)
    with open(frames_path, "rb") as f:
        data = f.read()
    # frame boundaries: BEGIN is the first frame, END the last
    first = 10 + (data[2] | data[3] << 8)
    last = len(data)
    p = first
    while True:
        ln = data[p + 2] | data[p + 3] << 8
        if p + 10 + ln >= last:
            break
        p += 10 + ln
    end_start = p
    bdev = open_flash(cfg.geom)
    Slots(bdev, cfg.geom).boot()
    link = MemLink(data)
    sess = Agent(cfg, link, bdev, cfg.geom)  # (issue 11: the agent; the state per request)

    def run_until(limit):
        # release bytes up to limit; poll() handles each frame as soon as it is complete
        link.limit = limit
        while link.pos < limit:
            sess.poll(0)

    t0 = time.ticks_us()
    run_until(first)
    begin_ms = _ms(t0)
    gc.collect()
    t0 = time.ticks_us()
    frames0 = sess.frames_in
    run_until(end_start)
    data_us = time.ticks_diff(time.ticks_us(), t0)
    nframes = sess.frames_in - frames0
    t0 = time.ticks_us()
    run_until(last)
    end_ms = _ms(t0)
    slots = sess._slots()
    return {
        "begin_ms": begin_ms,
        "data_us": data_us,
        "data_frames": nframes,
        "end_ms": end_ms,
        "errors_out": sess.errors_out,
        "transfer": list(slots.transfer()),
        "slot_states": [s[0] for s in slots.report()[3]],
    }


def bench_codeheap():
    # Live heap taken by the loaded code of the modules the serving agent keeps imported (the
    # unix port loads .mpy bytecode and its qstrs into the GC heap; boards freeze it in flash),
    # then by the groups the session imports per HELLO / STATUS_REQ / BEGIN and drops again:
    # the codec (wire + cbor) and the crypto (auth, ed25519 with its SHA-512), which take turns.
    gc.collect()
    base = gc.mem_alloc()
    # (issue 11: the idle agent beside the loader; the transfer machinery comes at BEGIN)
    import otalink.device.agent
    import otalink.device.link
    import otalink.device.loader

    gc.collect()
    serving = gc.mem_alloc() - base
    import otalink.protocol.wire

    gc.collect()
    codec = gc.mem_alloc() - base - serving
    import otalink.device.auth  # noqa: F401

    gc.collect()
    return {
        "code_heap_bytes": serving,
        "codec_code_heap_bytes": codec,
        "crypto_code_heap_bytes": gc.mem_alloc() - base - serving - codec,
    }


def main(argv):
    if argv[1] == "codeheap":
        out = bench_codeheap()
    elif argv[1] == "verify":
        extra = [int(a) for a in argv[3:5]]
        out = bench_verify(int(argv[2]), *extra)
    elif argv[1] == "verifyroom":
        out = bench_verify_room()
    else:
        out = bench_datapath(argv[2], argv[3])
    print(json.dumps(out))


main(sys.argv)
