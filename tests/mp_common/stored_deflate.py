# MicroPython test helper shared by the mp_test_*.py files of every folder (tests/mpyrun.py puts
# this folder on MICROPYPATH): the port has a deflate decoder but no compressor.


def stored_deflate(data, block=65535):
    # a raw deflate stream (RFC 1951) of stored blocks of at most `block` bytes
    out = bytearray()
    n = len(data)
    i = 0
    while True:
        k = min(block, n - i)
        out.append(1 if i + k == n else 0)  # BFINAL, BTYPE 00 (stored)
        out += bytes([k & 0xFF, k >> 8, (k & 0xFF) ^ 0xFF, (k >> 8) ^ 0xFF])
        out += data[i : i + k]
        i += k
        if i == n:
            return bytes(out)
