# Fuzz runner: one process per runtime (CPython and MicroPython run this same file) that decodes
# batches of inputs and prints one compact result line per input; tests/fuzz/harness.py
# writes the batches, compares the lines of the two runtimes and judges them.
#
# Written in the subset both runtimes run. Protocol (stdin/stdout, line based):
#   controller -> runner: "<path of a batch file>\n" ... "q\n"
#   runner -> controller: one line per record: tokens separated by spaces, then "END <count>\n"
# Batch file: records of  kind u8 | a u32 LE | b u32 LE | n u32 LE | n bytes.
#   kind "P" (a message payload): cbor.loads | wire.parse | fast path | parse_small |
#                                 command.split
#   kind "B" (a signed body):     cbor.loads | decode_instruction | decode_report |
#                                 decode_command | command.fields | the command reference
#   kind "F" (a byte stream, a = max_payload, b = chunking seed):
#                                 frame.FrameParser.feed (host) | hotpath.FrameReader (device)
# Tokens: "V<crc32>" accepted (a digest of the decoded value), "E<code>.<detail>" ProtocolError,
# "S-" parse_small / split / fields declined, "-" not run on this runtime,
# "F<frames>.<crc_errors>.<dropped>.<crc32>" frame streams, "M" MemoryError, "X<name>" any
# other exception (always a failure).
# ruff: noqa: UP031  (the MicroPython subset of protocol/: %-formatting)
import gc

MAX_REC = 4352  # the controller never writes a longer record (tests/fuzz/corpus.py)
# The input buffer first, at the bottom of the heap, as the agent makes its frame buffer first
# (device/main.py): what the decoders allocate then finds the rest of the heap in one piece.
BUF = bytearray(MAX_REC)

import binascii  # noqa: E402
import struct  # noqa: E402
import sys  # noqa: E402

# (issue 11: hotpath's DATA and small-message shortcuts live in datapath.py and small.py, which
# hotpath.DataView / parse_small load on first use; loaded here, before any record, so they sit
# beside the other decoders instead of splitting the heap mid-run)
from otalink.protocol import (  # noqa: E402
    cbor,
    datapath,  # noqa: F401
    frame,
    hotpath,
    wire,
)
from otalink.protocol import small as _small  # noqa: E402, F401
from otalink.protocol.errors import ProtocolError  # noqa: E402

MPY = sys.implementation.name == "micropython"
try:  # signed commands' byte-level parsers (protocol version 2)
    from otalink.protocol import command
except ImportError:
    command = None
# Decoders by name, wherever they live now. messages.py is host-side (it loads codes.py: not
# what a device at 64k keeps); under MicroPython what only it has is not run ("-").
if MPY:
    _MODS = (wire, command)
else:
    from otalink.protocol import messages

    _MODS = (wire, command, messages)


def _find(name):
    for m in _MODS:
        f = m.__dict__.get(name) if m is not None else None
        if f is not None:
            return f
    return None


DECODE_INSTRUCTION = _find("decode_instruction")
DECODE_REPORT = _find("decode_report")
DECODE_COMMAND = _find("decode_command")
HDR = 13
CHUNKS = (1, 2, 3, 5, 7, 13, 64, 255, 256, 700, 1500, 4096, 9000)
# FrameParser (the host's framer: a buffer and a RingIO of one frame each) runs under MicroPython
# only in tests; at 64k beside the runner it is not given frames over 2 KiB ("-"). The device's
# FrameReader takes every size.
FEED_MAX_MPY = 2048


def crc(b, c):
    return binascii.crc32(b, c) & 0xFFFFFFFF


def digest(v, c=0):
    """A digest of a decoded value, equal on both runtimes for equal values (bytes and
    memoryviews alike; bool, int and None kept apart)."""
    if v is None:
        return crc(b"n", c)
    if v is True:
        return crc(b"t", c)
    if v is False:
        return crc(b"f", c)
    if isinstance(v, int):
        return crc(("i%d;" % v).encode(), c)
    if isinstance(v, str):
        # MicroPython's str is its UTF-8 bytes and has the buffer protocol (no 8 KiB copy)
        # (len(): characters on both runtimes)
        b = v if MPY else v.encode("utf-8")
        return crc(b, crc(("s%d;" % len(v)).encode(), c))
    if isinstance(v, (bytes, bytearray, memoryview)):
        return crc(v, crc(("b%d;" % len(v)).encode(), c))
    if isinstance(v, (list, tuple)):
        c = crc(("l%d;" % len(v)).encode(), c)
        for x in v:
            c = digest(x, c)
        return c
    raise TypeError("decoded a " + type(v).__name__)


def accepted(v):
    return "V%08x" % digest(v)


def err(e):
    return "E%d.%d" % (e.code, e.detail)


def call(fn, mv):
    try:
        return accepted(fn(mv))
    except ProtocolError as e:
        return err(e)
    except MemoryError:
        return "M"
    except Exception as e:  # reported as a failure by the controller
        return "X" + type(e).__name__


def fast_path(dv, out, mv):
    """What device/session.py Session._handle does with a payload: DataView first, then
    parse_small, then the full parser (wire.parse). Returns the decoded message."""
    if dv.parse(mv):
        return [4, dv.offset, dv.data]
    t = hotpath.parse_small(mv, out)
    if t >= 0:
        return out[: len(wire.SPECS[t]) + 1]
    parts = split(mv)
    if parts is not None:
        return parts  # the session checks it as a signed command, without the codec
    return wire.parse(mv)


def split(mv):
    # device/session.py: a command type and command.split()'s shape
    if command is None or len(mv) < 2 or not 0x0A <= mv[1] <= 0x0E:
        return None
    parts = command.split(mv)
    if parts is None:
        return None
    return [mv[1], parts[0], parts[1], parts[2]]


def tok_split(mv):
    try:
        v = split(mv)
        return "S-" if v is None else accepted(v)
    except ProtocolError as e:  # split declines, it never raises
        return "XProtocolError" + err(e)
    except MemoryError:
        return "M"
    except Exception as e:
        return "X" + type(e).__name__


def tok_fields(mv):
    # command.fields(): the device's parser of a command's signed bytes
    if command is None:
        return "-"
    try:
        f = command.fields(mv)
        return "S-" if f is None else accepted([f[0], f[1], f[2]])
    except ProtocolError as e:
        return "XProtocolError" + err(e)
    except MemoryError:
        return "M"
    except Exception as e:
        return "X" + type(e).__name__


def command_reference(mv):
    """The signed bytes of a command as docs/protocol.md defines them, through the profile's
    decoder: [1, type ACTIVATE..ABORT, ecu_id text of 1..32 bytes, cmd_nonce bstr 16]."""
    v = cbor.loads(mv)
    if (
        isinstance(v, list)
        and len(v) == 4
        and v[0] == 1
        and v[0] is not True
        and isinstance(v[1], int)
        and v[1] is not True
        and 0x0A <= v[1] <= 0x0E
        and isinstance(v[2], str)
        and 1 <= len(v[2].encode("utf-8")) <= 32
        and isinstance(v[3], (bytes, memoryview))
        and len(v[3]) == 16
    ):
        return [v[1], v[2].encode("utf-8"), v[3]]
    raise ProtocolError(10, 0xFF)


def small(out, mv):
    t = hotpath.parse_small(mv, out)
    if t < 0:
        return "S-"
    return accepted(out[: len(wire.SPECS[t]) + 1])


def tok_small(out, mv):
    try:
        return small(out, mv)
    except ProtocolError as e:  # parse_small must decline, never raise: the controller says so
        return "XProtocolError" + err(e)
    except MemoryError:
        return "M"
    except Exception as e:
        return "X" + type(e).__name__


def tok_fast(dv, out, mv):
    try:
        return accepted(fast_path(dv, out, mv))
    except ProtocolError as e:
        return err(e)
    except MemoryError:
        return "M"
    except Exception as e:
        return "X" + type(e).__name__


# ---- frame streams ----------------------------------------------------------------------------
def lcg(s):
    return (s * 1664525 + 1013904223) & 0xFFFFFFFF


class ChunkStream:
    """A stream handing out the input in seeded chunk sizes, like a UART read: readinto(buf, n)
    (MicroPython's signature) or readinto(view) (CPython's)."""

    def __init__(self, mv, seed):
        self.mv = mv
        self.pos = 0
        self.st = seed

    def readinto(self, buf, n=-1):
        if n < 0 or n > len(buf):
            n = len(buf)
        self.st = lcg(self.st)
        k = CHUNKS[(self.st >> 16) % len(CHUNKS)]
        left = len(self.mv) - self.pos
        m = min(n, k, left)
        if m <= 0:
            return None if left else 0
        buf[0:m] = self.mv[self.pos : self.pos + m]
        self.pos += m
        return m


def _frames_token(p, acc, buffered, fed):
    framed = acc[1]
    if p.dropped_bytes + framed + buffered != fed:
        return "XInvariant"
    return "F%d.%d.%d.%08x" % (p.frames, p.crc_errors, p.dropped_bytes, acc[0])


def _take(p, acc):
    q = p.next()
    while q is not None:
        acc[0] = crc(q, acc[0])
        acc[1] += len(q) + 10
        q = p.next()


def run_feed(mv, max_payload, seed):
    # the host's use: FrameParser.feed() with whatever chunks the serial port returns
    p = frame.FrameParser(max_payload)
    acc = [0, 0]
    n = len(mv)
    pos = 0
    st = seed
    while pos < n:
        st = lcg(st)
        end = min(n, pos + CHUNKS[(st >> 16) % len(CHUNKS)])
        c = mv[pos:end]
        q = 0
        while True:
            if q < len(c):
                q += p.feed(c[q:])
            _take(p, acc)
            if q >= len(c):
                break
        pos = end
    _take(p, acc)
    return _frames_token(p, acc, p.buffered(), n)


def run_reader(mv, max_payload, seed):
    # the device's use (device/session.py poll): readinto_from(link), then next() until None
    p = hotpath.FrameReader(max_payload)
    s = ChunkStream(mv, seed ^ 0x5A5A5A5A)
    acc = [0, 0]
    idle = 0
    while idle < 3:
        got = p.readinto_from(s)
        before = acc[1]
        _take(p, acc)
        idle = idle + 1 if not got and acc[1] == before else 0
    return _frames_token(p, acc, p.buffered(), s.pos)


def tok_frames(fn, mv, a, b):
    try:
        return fn(mv, a, b)
    except ProtocolError as e:
        return "XProtocolError" + err(e)  # the framer counts errors, it never raises
    except MemoryError:
        return "M"
    except Exception as e:
        return "X" + type(e).__name__


# ---- batches ----------------------------------------------------------------------------------
def run_record(kind, a, b, mv, dv, out):
    if kind == 0x50:  # "P"
        return (
            call(cbor.loads, mv),
            call(wire.parse, mv),
            tok_fast(dv, out, mv),
            tok_small(out, mv),
            tok_split(mv),
        )
    if kind == 0x42:  # "B"
        return (
            call(cbor.loads, mv),
            call(DECODE_INSTRUCTION, mv) if DECODE_INSTRUCTION else "-",
            call(DECODE_REPORT, mv) if DECODE_REPORT else "-",
            call(DECODE_COMMAND, mv) if DECODE_COMMAND else "-",
            tok_fields(mv),
            call(command_reference, mv) if command else "-",
        )
    if kind == 0x46:  # "F"
        if MPY and a > FEED_MAX_MPY:
            t = "-"
        else:
            t = tok_frames(run_feed, mv, a, b)
            gc.collect()  # (the framers' buffers, one after the other)
        return (t, tok_frames(run_reader, mv, a, b))
    return ("Xkind",)


def run_batch(path, buf, write):
    mv_all = memoryview(buf)
    hdr = bytearray(HDR)
    dv = hotpath.DataView()
    out = [0] * 8
    count = 0
    with open(path, "rb") as f:
        while True:
            if f.readinto(hdr) != HDR:
                break
            kind, a, b, n = struct.unpack("<BIII", hdr)
            if kind == 0x46 or n > 1024:
                # A long text decodes into one block of its size, a framer makes 4 KiB ones:
                # start those from a collected heap, before this record's first allocation
                # (after a collection MicroPython allocates from the lowest free block; small
                # objects made before it would stay wherever the last free block was).
                gc.collect()
            mv = mv_all[:n]
            if n and f.readinto(mv) != n:
                break
            write(" ".join(run_record(kind, a, b, mv, dv, out)) + "\n")
            count += 1
            # drop what the decoders keep (views of this record): small live objects left
            # anywhere in the heap would split its free space for the next record's long text
            dv.data = dv._src = None
            for i in range(len(out)):
                out[i] = 0
            mv = None
    return count


def inject(fault):
    """Break a decoder on purpose, so tests/fuzz/test_fuzz.py can show that the controller
    catches each kind of failure: "utf8" (defect 2 back: no UTF-8 check beyond str()), "fast"
    (the fast path answers E_TOO_LARGE for any DATA with a 32-bit offset), "hang" (wire.parse
    loops on the payload f7), "exc" (decode_instruction raises KeyError on db)."""
    if fault == "utf8":
        cbor._utf8_ok = lambda b: True
    elif fault == "fast":
        real = hotpath.DataView.parse

        def parse(self, mv):
            if len(mv) > 2 and mv[0] == 0x83 and mv[1] == 4 and mv[2] == 0x1A:
                raise ProtocolError(13, 2)
            return real(self, mv)

        hotpath.DataView.parse = parse
    elif fault == "hang":
        real_parse = wire.parse

        def hang(mv, copy=None):
            while len(mv) == 1 and mv[0] == 0xF7:
                pass
            return real_parse(mv, copy)

        wire.parse = hang
    elif fault == "exc":
        global DECODE_INSTRUCTION
        real_instr = DECODE_INSTRUCTION

        def exc(mv):
            if len(mv) == 1 and mv[0] == 0xDB:
                raise KeyError(0)
            return real_instr(mv)

        DECODE_INSTRUCTION = exc


def main(fault=None):
    if fault:
        inject(fault)
    buf = BUF
    stdout = sys.stdout
    if MPY:
        write = stdout.write  # unbuffered on the unix port

        def flush():
            pass
    else:
        stdout.reconfigure(line_buffering=True)  # a line per record: the controller sees progress
        write = stdout.write
        flush = stdout.flush
    stdin = sys.stdin
    while True:
        line = stdin.readline()
        if not line:
            return
        line = line.strip()
        if line == "q":
            return
        if not line:
            continue
        n = run_batch(line, buf, write)
        write("END %d\n" % n)
        flush()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
