"""Seeded, structure-aware fuzz inputs for the protocol decoders (CPython only).

Message shapes come from the message table at run time (``wire.SPECS``: every type's field
specs) and the signed bodies from the builders' signatures (``messages.encode_instruction``,
``encode_report``, ``encode_command`` if present), so shape changes flow in without editing
this file. Valid inputs of every kind are then mutated: bit flips, byte sets, truncation,
insertion, deletion, duplication, splicing, CBOR head edits (length/argument fields made
larger, smaller, non-shortest, 64-bit, indefinite, another major type), CBOR heads of every
initial byte, deep nesting, long strings and UTF-8 edge cases; plus random bytes and frame
streams (garbage, bad headers, bad CRCs, cut frames) for the two framers.

A record is (kind, a, b, data): kind "P" a message payload, "B" a signed body (instruction,
report, command), "F" a byte stream with a = max_payload and b = the chunking seed.
"""

from __future__ import annotations

import inspect
import random
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from otalink.protocol import cbor, codes, messages, wire

from tests.fuzz import cases

Record = tuple[str, int, int, bytes]

MAX_REC = 4352  # tests/fuzz/runner.py's buffer: frame streams (kind "F") up to this
# Payloads and bodies up to the largest max_payload of any board profile (boards/*/board.json):
# what a device at 64k can be sent. (Longer strings are declared, and cut: the profile's bounds
# are decided from the head.)
MAX_PAY = 4096
MAX_PAYLOADS = (16, 64, 256, 256, 512, 512, 1024, 4096)

# Inputs that once split the runtimes or the paths (issue 10) or sit on a boundary; every run
# starts with them (and with every UTF-8 case and every initial byte, see Corpus.batch).
REGRESSIONS = [
    "62c080",  # an overlong NUL: MicroPython accepted it
    "63eda080",  # a surrogate
    "64f4908080",  # over U+10FFFF
    "db",  # a tag with a 64-bit argument: E_BAD_MESSAGE, not E_TOO_LARGE
    "bb0000000000000000",  # a map with a 64-bit argument
    "820f62c328",
    "818181818100",
    "9f05000000ff",
    *cases.MALFORMED_DATA,
]


def head(major: int, val: int, form: int = -1) -> bytes:
    """A CBOR head; form -1 = shortest, else the additional-info 24..27 to use."""
    mt = major << 5
    if form < 0:
        if val < 24:
            return bytes([mt | val])
        form = 24 if val < 0x100 else 25 if val < 0x10000 else 26 if val < 2**32 else 27
    size = {24: 1, 25: 2, 26: 4, 27: 8}[form]
    return bytes([mt | form]) + (val % (1 << (8 * size))).to_bytes(size, "big")


def heads(data: bytes) -> list[tuple[int, int, int, int]]:
    """(pos, major, head_len, value) of every CBOR head in a well-formed encoding, in order."""
    out: list[tuple[int, int, int, int]] = []

    def walk(pos: int) -> int:
        ib = data[pos]
        major, ai = ib >> 5, ib & 31
        if ai < 24:
            n, val = 1, ai
        else:
            size = 1 << (ai - 24)
            n, val = 1 + size, int.from_bytes(data[pos + 1 : pos + 1 + size], "big")
        out.append((pos, major, n, val))
        pos += n
        if major in (2, 3):
            return pos + val
        if major == 4:
            for _ in range(val):
                pos = walk(pos)
        return pos

    try:
        walk(0)
    except (IndexError, KeyError):
        pass
    return out


class Corpus:
    """Deterministic for a seed: batch(n) returns the next n records."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.specs: dict[int, tuple[Any, ...]] = dict(wire.SPECS)
        self.types = sorted(self.specs)
        self.bodies = [
            fn
            for fn in (
                getattr(messages, "encode_instruction", None),
                getattr(messages, "encode_report", None),
                getattr(messages, "encode_command", None),
            )
            if fn is not None
        ]
        self.texts = [b.decode() for b, ok in cases.utf8() if ok and len(b) <= 32]
        self.pool: list[bytes] = []  # recent valid payloads, for splicing
        self.regressions = [bytes.fromhex(h) for h in REGRESSIONS]
        self.gens: list[tuple[int, Callable[[], Record]]] = [
            (30, self.mutated_message),
            (4, self.valid_message),
            (9, self.heads_in_context),
            (6, self.data_family),
            (3, self.nesting),
            (2, self.long_string),
            (5, self.text_in_context),
            (9, self.random_bytes),
            (10, self.body),
            (4, self.frames),
        ]
        self.total = sum(w for w, _ in self.gens)

    # ---- values from the message table ------------------------------------------------------
    def uint(self, lo: int = 0, hi: int = 2**32 - 1) -> int:
        r = self.rng
        pick = r.choice(
            [lo, hi, lo + 1, hi - 1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, r.randint(lo, hi)]
        )
        return min(max(pick, lo), hi)

    def blob(self, n: int) -> bytes:
        r = self.rng
        if r.random() < 0.5:
            return bytes(n)
        return r.randbytes(n)

    def text(self) -> str:
        return self.rng.choice(self.texts)

    def field(self, spec: Any) -> Any:
        r = self.rng
        try:
            kind, lo, hi = spec
        except (TypeError, ValueError):
            return self.anyvalue(2)
        if kind == wire._U:
            return self.uint(lo, hi)
        if kind == wire._B:
            n = r.choice([lo, hi, r.randint(lo, min(hi, lo + 40))])
            if n > 600 and r.random() < 0.8:
                n = r.randint(lo, min(hi, lo + 40))
            return self.blob(n)
        if kind == wire._T:
            return self.text()
        if kind == getattr(wire, "_SIGS", None):
            return [[self.blob(8), self.blob(64)] for _ in range(r.randint(0, hi))]
        return self.anyvalue(2)

    def anyvalue(self, depth: int) -> Any:
        r = self.rng
        c = r.randrange(7 if depth > 0 else 6)
        if c == 0:
            return self.uint()
        if c == 1:
            return -1 - self.uint()
        if c == 2:
            return self.blob(r.choice([0, 1, 8, 16, 32, 64, r.randint(0, 100)]))
        if c == 3:
            return self.text()
        if c == 4:
            return r.choice([True, False, None])
        if c == 5:
            return r.randint(-30, 30)
        return [self.anyvalue(depth - 1) for _ in range(r.randint(0, 4))]

    def message(self) -> bytes:
        t = self.rng.choice(self.types)
        fields = [self.field(s) for s in self.specs[t]]
        out = cbor.dumps([t, *fields])
        if len(self.pool) < 64:
            self.pool.append(out)
        else:
            self.pool[self.rng.randrange(64)] = out
        return out

    # ---- mutations ---------------------------------------------------------------------------
    def edit_head(self, data: bytes) -> bytes:
        hs = heads(data)
        if not hs:
            return data
        r = self.rng
        pos, major, n, val = r.choice(hs)
        c = r.randrange(10)
        if c == 0:
            new = head(major, max(val + r.choice([-1, 1, 2, 100]), 0))
        elif c == 1:
            new = head(major, r.choice([0, 1, 16, 17, 23, 24, 8176, 8177, 8192, 8193, 2**32 - 1]))
        elif c == 2:  # a non-shortest or a wider head for the same value
            new = head(major, val, r.choice([24, 25, 26, 27]))
        elif c == 3:
            new = head(major, r.randrange(2**64), 27)
        elif c == 4:
            new = bytes([(major << 5) | r.choice([28, 29, 30, 31])])
        elif c == 5:  # another major type, same argument
            new = bytes([(r.randrange(8) << 5) | (data[pos] & 31)]) + data[pos + 1 : pos + n]
        elif c == 6:  # an indefinite-length string/array, with a break somewhere
            new = bytes([(major << 5) | 31])
            data = data + b"\xff"
        elif c == 7:
            new = head(major, val, 26)[: r.randint(1, 4)]  # a cut head
        elif c == 8:
            new = bytes([r.randrange(256)]) + data[pos + 1 : pos + n]
        else:
            new = head(major, r.randrange(2**32))
        return data[:pos] + new + data[pos + n :]

    def mutate(self, data: bytes) -> bytes:
        r = self.rng
        b = bytearray(data)
        for _ in range(r.choice([1, 1, 1, 2, 3, 5])):
            c = r.randrange(11)
            n = len(b)
            if c == 0 and n:
                b[r.randrange(n)] ^= 1 << r.randrange(8)
            elif c == 1 and n:
                b[r.randrange(n)] = r.choice(
                    [0, 0xFF, 0x7F, 0x80, 0x18, 0x1B, 0x3B, 0x5B, 0x9F, 0xBF, 0xDB, 0xF7, 0xFB,
                     r.randrange(256)]
                )  # fmt: skip
            elif c == 2:
                b = b[: r.randint(0, n)]
            elif c == 3:
                i = r.randint(0, n)
                b[i:i] = r.randbytes(r.randint(1, 9))
            elif c == 4:
                i = r.randint(0, n)
                b[i:i] = head(r.randrange(8), self.uint(), r.choice([-1, -1, 24, 25, 26, 27]))
            elif c == 5 and n:
                i = r.randrange(n)
                del b[i : i + r.randint(1, 8)]
            elif c == 6 and n:
                i = r.randrange(n)
                j = min(n, i + r.randint(1, 16))
                b[j:j] = b[i:j]
            elif c == 7 and self.pool:
                other = r.choice(self.pool)
                b = b[: r.randint(0, n)] + other[r.randint(0, len(other)) :]
            elif c == 8:
                b += r.randbytes(r.randint(1, 3))
            else:
                b = bytearray(self.edit_head(bytes(b)))
        return bytes(b[:MAX_PAY])

    # ---- generators --------------------------------------------------------------------------
    def valid_message(self) -> Record:
        return ("P", 0, 0, self.message())

    def mutated_message(self) -> Record:
        return ("P", 0, 0, self.mutate(self.message()))

    def heads_in_context(self) -> Record:
        # every initial byte, with an argument of 0..9 bytes, alone or as a field of a message
        r = self.rng
        ib = r.randrange(256)
        item = bytes([ib]) + r.choice([b"", bytes(8), b"\xff" * 8, r.randbytes(r.randint(1, 9))])
        if r.random() < 0.3:
            return ("P", 0, 0, item)
        msg = self.message()
        hs = heads(msg)[1:]
        if not hs:
            return ("P", 0, 0, msg[:1] + item)
        pos = r.choice(hs)[0]
        return ("P", 0, 0, msg[:pos] + item + msg[pos:][r.randint(0, 3) :])

    def data_family(self) -> Record:
        # DATA, the fast path's message: [4, offset, data] with its heads edited
        r = self.rng
        off = self.uint()
        n = r.choice([0, 1, 23, 24, 255, 256, 8176, 8177, r.randint(1, 64)])
        if n > 300 and r.random() < 0.5:
            n = r.randint(1, 300)
        parts = [
            b"\x83\x04",
            head(0, off, r.choice([-1, -1, -1, 24, 25, 26, 27])),
            head(2, n, r.choice([-1, -1, -1, 24, 25, 26, 27])),
            self.blob(n),
        ]
        if r.random() < 0.3:
            parts[r.randrange(1, 3)] = bytes([r.randrange(256)]) + r.randbytes(r.randint(0, 8))
        data = b"".join(parts)
        if r.random() < 0.5:
            data = self.mutate(data)
        return ("P", 0, 0, data)

    def nesting(self) -> Record:
        r = self.rng
        d = r.randint(1, 8)
        opener = r.choice([b"\x81", b"\x82", b"\x9f", b"\x91", b"\x90", b"\x98\x11"])
        inner = r.choice([b"\x00", b"\x80", b"\x41\x00", b"\x9f\xff", b"\xa0", b""])
        data = opener * d + inner + r.choice([b"", b"\x00" * d, b"\xff" * d])
        if r.random() < 0.3:
            data = b"\x83\x04" + data
        return ("P", 0, 0, data)

    def long_string(self) -> Record:
        r = self.rng
        n = r.choice([8175, 8176, 8177, 8191, 8192, 8193, 16000, 2**32 - 1])
        major = r.choice([2, 3])
        body = b"a" * min(n, MAX_PAY - 16)
        if major == 3 and r.random() < 0.5:
            b = r.choice(cases.VALID + cases.INVALID)
            i = r.randrange(len(body))
            body = (body[:i] + b + body[i:])[: len(body)]
        data = head(major, n) + body[: r.choice([n, n - 1, r.randint(0, n)])]
        if r.random() < 0.5:
            data = b"\x83\x04\x00" + data
        return ("P", 0, 0, data[:MAX_PAY])

    def text_in_context(self) -> Record:
        # UTF-8 edge cases as a text string: alone, inside an array, in place of a field
        r = self.rng
        b, _ok = r.choice(cases.utf8())
        item = cases.tstr(b)
        c = r.randrange(3)
        if c == 0:
            return ("P", 0, 0, item)
        if c == 1:
            return ("P", 0, 0, b"\x82\x0f" + item)
        msg = self.message()
        hs = heads(msg)[1:]
        if not hs:
            return ("P", 0, 0, msg + item)
        pos, major, n, val = r.choice(hs)
        end = pos + n + (val if major in (2, 3) else 0)
        if major == 4:
            end = pos + n
        return ("P", 0, 0, msg[:pos] + item + msg[end:])

    def random_bytes(self) -> Record:
        r = self.rng
        n = r.choice([0, 1, 2, 3, r.randint(0, 16), r.randint(0, 64), r.randint(0, 300)])
        return ("P", 0, 0, r.randbytes(n))

    def body_value(self, fn: Callable[..., bytes]) -> bytes:
        r = self.rng
        kw: dict[str, Any] = {}
        for name, p in inspect.signature(fn).parameters.items():
            if p.default is not inspect.Parameter.empty:
                continue
            if "nonce" in name:
                kw[name] = self.blob(16)
            elif name == "sha256":
                kw[name] = self.blob(32)
            elif name in ("ecu_id", "hw_id", "version", "target"):
                kw[name] = self.text() or "x"
            elif name == "slots":
                kw[name] = [
                    [r.randint(0, codes.SLOT_REJECTED), self.text(), self.uint(), self.uint(),
                     r.choice([b"", self.blob(32)])]
                    for _ in range(2)
                ]  # fmt: skip
            elif name == "caps":
                kw[name] = [self.uint() for _ in range(7)]
            elif name == "transfer":
                kw[name] = [self.uint() for _ in range(4)]
            elif name == "mtype":
                kw[name] = r.choice(getattr(messages, "COMMANDS", (codes.MSG_ACTIVATE,)))
            elif name in ("kind", "active_slot"):
                kw[name] = r.randint(0, 1)
            elif name == "boot_state":
                kw[name] = r.randint(0, codes.BOOT_REVERTED)
            else:
                kw[name] = self.uint()
        return bytes(fn(**kw))

    def body(self) -> Record:
        r = self.rng
        fn = r.choice(self.bodies)
        try:
            data = self.body_value(fn)
        except Exception as e:  # a builder whose arguments this file does not know yet
            raise RuntimeError(f"tests/fuzz/corpus.py cannot build {fn.__name__}: {e!r}") from e
        c = r.randrange(4)
        if c == 0:
            return ("B", 0, 0, data)
        if c == 1:  # an UTF-8 edge case in place of one of its text strings
            texts = [h for h in heads(data) if h[1] == 3]
            if texts:
                pos, _m, n, val = r.choice(texts)
                b, _ok = r.choice(cases.utf8())
                data = data[:pos] + cases.tstr(b) + data[pos + n + val :]
                return ("B", 0, 0, data)
        return ("B", 0, 0, self.mutate(data))

    def frames(self) -> Record:
        r = self.rng
        maxp = r.choice(MAX_PAYLOADS)
        out = bytearray()
        for _ in range(r.randint(0, 5)):
            c = r.randrange(8)
            if c == 0:
                out += r.randbytes(r.randint(0, 40))
            elif c == 1:
                out += r.choice([b"\xa5", b"\xa5\x5a", b"\xa5\xa5\x5a", b"\x5a\xa5"])
            else:
                p = self.message() if r.random() < 0.6 else r.randbytes(r.randint(1, 64))
                if len(p) > maxp and r.random() < 0.8:
                    p = p[:maxp]
                f = bytearray(frame_bytes(p))
                k = r.randrange(9)
                if k == 0:
                    f[r.randrange(len(f))] ^= 1 << r.randrange(8)
                elif k == 1:  # LEN and NLEN edited together: a plausible wrong length
                    ln = r.choice([0, 1, maxp, maxp + 1, len(p) + 1, len(p) - 1, 0xFFFF])
                    ln &= 0xFFFF
                    f[2:6] = struct.pack("<HH", ln, ln ^ 0xFFFF)
                elif k == 2:
                    f = f[: r.randrange(len(f))]
                elif k == 3:
                    f[-1] ^= 0xFF
                out += f
        if r.random() < 0.5:
            out += bytes(maxp + 10)  # non-SOF filler: every candidate completes
        if r.random() < 0.1:
            out = bytearray(self.mutate(bytes(out)))
        return ("F", maxp, r.getrandbits(32), bytes(out[: MAX_REC - 16]))

    # ---- batches -----------------------------------------------------------------------------
    def one(self) -> Record:
        x = self.rng.randrange(self.total)
        for w, g in self.gens:
            if x < w:
                return g()
            x -= w
        raise AssertionError

    def batch(self, n: int, first: bool = False) -> list[Record]:
        out: list[Record] = []
        if first:
            for d in self.regressions:
                out.append(("P", 0, 0, d))
                out.append(("B", 0, 0, d))
            for b, _ok in cases.utf8():
                out.append(("P", 0, 0, cases.tstr(b)))
            for ib in range(256):  # every initial byte, with and without an argument
                for tail in (b"", bytes(8), b"\xff" * 8):
                    out.append(("P", 0, 0, bytes([ib]) + tail))
        while len(out) < n:
            kind, a, b, data = self.one()
            out.append((kind, a, b, data if kind == "F" else data[:MAX_PAY]))
        return out


def frame_bytes(p: bytes) -> bytes:
    body = struct.pack("<HH", len(p), len(p) ^ 0xFFFF) + p
    return b"\xa5\x5a" + body + struct.pack("<I", zlib.crc32(body))


def write_batch(path: str, records: list[Record]) -> None:
    with open(path, "wb") as f:
        for kind, a, b, data in records:
            f.write(struct.pack("<BIII", ord(kind), a, b, len(data)) + data)


def iter_records(seed: int, total: int, batch: int) -> Iterator[list[Record]]:
    c = Corpus(seed)
    done = 0
    first = True
    while done < total:
        n = min(batch, total - done)
        recs = c.batch(n, first)
        first = False
        done += len(recs)
        yield recs
