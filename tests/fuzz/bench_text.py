# Cost of the UTF-8 check in CBOR text decoding (issue 10, defect 2), on the runtime that runs
# this file: cbor.loads of a text string, and the check (cbor._utf8_ok) alone, in microseconds
# (best of 5). `make bench-cbor-text` runs it under MicroPython at 64k. ASCII text skips the
# check (as many characters as bytes); non-ASCII text pays a few C-speed scans plus one loop
# step per E0/ED/F0/F4 lead byte.
# ruff: noqa: UP031  (the MicroPython subset: %-formatting)
import gc
import sys
import time

from otalink.protocol import cbor

MPY = sys.implementation.name == "micropython"


def now_us():
    return time.ticks_us() if MPY else int(time.perf_counter() * 1e6)


def diff(a, b):
    return time.ticks_diff(a, b) if MPY else a - b


def head(n):
    if n < 24:
        return bytes([0x60 + n])
    if n < 256:
        return bytes([0x78, n])
    return bytes([0x79, n >> 8, n & 0xFF])


def best(fn, arg, n):
    out = None
    for _ in range(5):
        gc.collect()
        t = now_us()
        for _ in range(n):
            fn(arg)
        us = diff(now_us(), t) / n
        out = us if out is None or us < out else out
    return out


CASES = (
    ("ascii, 5 B (a version)", b"2.0.0"),
    ("ascii, 32 B (an id)", b"a" * 32),
    ("2-byte chars, 32 B", b"\xc3\xbc" * 16),
    ("3-byte chars E0/ED, 30 B", b"\xe0\xa0\x80\xed\x9f\xbf" * 5),
    ("ascii, 4000 B", b"a" * 4000),
    ("2-byte chars, 4000 B", b"\xc3\xbc" * 2000),
    ("3-byte chars E0/ED, 3996 B", b"\xe0\xa0\x80\xed\x9f\xbf" * 666),
    ("4-byte chars F0/F4, 4000 B", b"\xf0\x90\x80\x80\xf4\x8f\xbf\xbf" * 500),
)


def main():
    print("runtime %s: cbor.loads(text) / the UTF-8 check alone, us (best of 5)" % sys.platform)
    for name, raw in CASES:
        data = head(len(raw)) + raw
        mv = memoryview(data)
        n = 200 if len(raw) > 100 else 2000
        total = best(cbor.loads, mv, n)
        check = best(cbor._utf8_ok, raw, n)
        print("  %-30s loads %8.1f   check %8.1f" % (name, total, check))


main()
