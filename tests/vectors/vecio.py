# Reads the golden vector files; runs on CPython and MicroPython (tests import it on both).
import binascii
import json

try:
    import os

    _ROOT = os.getenv("OTALINK_ROOT") or "."
except ImportError:  # pragma: no cover
    _ROOT = "."

DIR = _ROOT + "/tests/vectors/"


def unhex(s):
    return binascii.unhexlify(s) if s else b""


def rows(name):
    """Tab-separated fields of each non-comment line of tests/vectors/<name>."""
    out = []
    with open(DIR + name) as f:
        for line in f:
            line = line.rstrip("\n")
            if line and not line.startswith("#"):
                out.append(line.split("\t"))
    return out


def from_json(v):
    """JSON expected value -> Python value (bytes are {"b": hex})."""
    if isinstance(v, dict):
        return unhex(v["b"])
    if isinstance(v, list):
        return [from_json(x) for x in v]
    return v


def parse_json(s):
    return from_json(json.loads(s))


def norm(v):
    """memoryview/bytearray -> bytes, recursively, for comparisons."""
    if isinstance(v, (memoryview, bytearray)):
        return bytes(v)
    if isinstance(v, list):
        return [norm(x) for x in v]
    return v


def same(a, b):
    """Deep equality that tells True from 1 (MicroPython and CPython agree on this)."""
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return False
        return all(same(a[i], b[i]) for i in range(len(a)))
    if (a is True or a is False or b is True or b is False) and a is not b:
        return False
    return type(a) is type(b) and a == b
