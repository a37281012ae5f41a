"""Regenerate the golden vectors (CPython only): ``python -m tests.vectors.make_vectors``.

Independent of the otalink implementation on purpose: payloads are encoded by cbor2, frames are
assembled with struct + zlib.crc32 right here, only the integer codes come from codes.py. The
output files are committed; tests on both runtimes compare otalink against them.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

import cbor2
from otalink.protocol import codes as c

HERE = Path(__file__).resolve().parent


def frame(payload: bytes) -> bytes:
    ln = len(payload)
    body = struct.pack("<HH", ln, ln ^ 0xFFFF) + payload
    return b"\xa5\x5a" + body + struct.pack("<I", zlib.crc32(body))


def js(v: Any) -> Any:
    if isinstance(v, bytes):
        return {"b": v.hex()}
    if isinstance(v, list):
        return [js(x) for x in v]
    return v


N16 = bytes(range(16))
SIG = bytes(range(64))
SHA = bytes(range(100, 132))
KID = bytes(range(8))

MESSAGES: list[tuple[str, list[Any]]] = [
    ("hello", [c.MSG_HELLO, 1, N16, 4096]),
    ("hello_min_payload", [c.MSG_HELLO, 1, N16, 256]),
    ("info", [c.MSG_INFO, b"\x8d" + bytes(40), SIG]),
    ("begin_one_sig", [c.MSG_BEGIN, b"\x8b\x01" + bytes(20), [[KID, SIG]], 262144, SHA, 0, 262144]),
    (
        "begin_two_sigs_deflate",
        [c.MSG_BEGIN, bytes(300), [[KID, SIG], [KID[::-1], SIG[::-1]]], 100000, SHA, 1, 60001],
    ),
    ("begin_no_sig", [c.MSG_BEGIN, b"\x01", [], 0, SHA, 0, 0]),
    ("data_off0", [c.MSG_DATA, 0, b"\x00"]),
    ("data_off23", [c.MSG_DATA, 23, bytes(23)]),
    ("data_off24", [c.MSG_DATA, 24, bytes(range(24))]),
    ("data_off255", [c.MSG_DATA, 255, bytes(255)]),
    ("data_off256", [c.MSG_DATA, 256, bytes(256)]),
    ("data_off65535", [c.MSG_DATA, 65535, b"\xa5\x5a" * 10]),
    ("data_off65536_full", [c.MSG_DATA, 65536, bytes(i & 255 for i in range(4080))]),
    ("data_offmax", [c.MSG_DATA, 0xFFFFFFFF, b"x"]),
    ("ack", [c.MSG_ACK, 8160, 16384, c.PH_RECEIVING]),
    ("ack_zero", [c.MSG_ACK, 0, 0, c.PH_IDLE]),
    ("status", [c.MSG_STATUS, bytes(100), SIG]),
    ("progress", [c.MSG_PROGRESS, c.PH_ERASING, 3, 64]),
    ("end", [c.MSG_END, 262144]),
    ("result", [c.MSG_RESULT, c.MSG_END, c.E_HASH_MISMATCH, 7]),
    ("activate", [c.MSG_ACTIVATE]),
    ("reboot", [c.MSG_REBOOT]),
    ("confirm", [c.MSG_CONFIRM]),
    ("revert", [c.MSG_REVERT]),
    ("abort", [c.MSG_ABORT]),
    ("error", [c.MSG_ERROR, c.E_OUT_OF_WINDOW, 65536]),
    ("status_req", [c.MSG_STATUS_REQ, N16[::-1]]),
]

# payload bytes, expected error code
BAD_MESSAGES: list[tuple[str, bytes, int]] = [
    ("empty_array", b"\x80", c.E_BAD_MESSAGE),
    ("not_array", b"\x01", c.E_BAD_MESSAGE),
    ("unknown_type", cbor2.dumps([0x42, 1]), c.E_UNKNOWN_TYPE),
    ("type_zero", cbor2.dumps([0]), c.E_UNKNOWN_TYPE),
    ("type_text", cbor2.dumps(["hello"]), c.E_BAD_MESSAGE),
    ("hello_short_nonce", cbor2.dumps([1, 1, bytes(15), 4096]), c.E_BAD_MESSAGE),
    ("hello_arity", cbor2.dumps([1, 1, N16]), c.E_BAD_MESSAGE),
    ("hello_small_payload", cbor2.dumps([1, 1, N16, 255]), c.E_BAD_MESSAGE),
    ("data_empty", cbor2.dumps([4, 0, b""]), c.E_BAD_MESSAGE),
    ("data_negative_offset", cbor2.dumps([4, -1, b"x"]), c.E_BAD_MESSAGE),
    ("data_text", cbor2.dumps([4, 0, "x"]), c.E_BAD_MESSAGE),
    ("data_too_long", cbor2.dumps([4, 0, bytes(8177)]), c.E_TOO_LARGE),
    ("data_bool_offset", cbor2.dumps([4, True, b"x"]), c.E_BAD_MESSAGE),
    ("begin_instr_too_long", cbor2.dumps([3, bytes(513), [], 1, SHA, 0, 1]), c.E_TOO_LARGE),
    ("begin_five_sigs", cbor2.dumps([3, b"\x01", [[KID, SIG]] * 5, 1, SHA, 0, 1]), c.E_TOO_LARGE),
    ("begin_bad_keyid", cbor2.dumps([3, b"\x01", [[KID[:7], SIG]], 1, SHA, 0, 1]), c.E_BAD_MESSAGE),
    ("begin_bad_compression", cbor2.dumps([3, b"\x01", [], 1, SHA, 9, 1]), c.E_BAD_MESSAGE),
    ("ack_map", b"\xa1\x01\x02", c.E_BAD_MESSAGE),
    ("ack_float", b"\x84\x05\xf9\x3c\x00\x00\x00", c.E_BAD_MESSAGE),
    ("ack_tag", b"\x84\x05\xc1\x00\x00\x00", c.E_BAD_MESSAGE),
    ("ack_nonshortest", b"\x84\x05\x18\x05\x00\x00", c.E_BAD_MESSAGE),
    ("ack_uint64", b"\x84\x05\x1b" + bytes(7) + b"\x01\x00\x00", c.E_TOO_LARGE),
    ("ack_indefinite", b"\x9f\x05\x00\x00\x00\xff", c.E_BAD_MESSAGE),
    ("trailing_byte", cbor2.dumps([10]) + b"\x00", c.E_BAD_MESSAGE),
    ("truncated", cbor2.dumps([4, 0, bytes(10)])[:-1], c.E_BAD_MESSAGE),
    ("huge_bstr_decl", b"\x83\x04\x00\x5a\xff\xff\xff\xff", c.E_TOO_LARGE),
    ("huge_array_decl", b"\x9a\xff\xff\xff\xff", c.E_TOO_LARGE),
    ("deep_nesting", b"\x81\x81\x81\x81\x81\x00", c.E_TOO_LARGE),
    ("bad_utf8", b"\x82\x0f\x62\xc3\x28", c.E_BAD_MESSAGE),
    ("activate_extra", cbor2.dumps([10, 0]), c.E_BAD_MESSAGE),
]

# (a value in the profile) hex, or the error code for RFC 8949 Appendix A examples outside it.
RFC_IN = [
    ("00", 0), ("01", 1), ("0a", 10), ("17", 23), ("1818", 24), ("1819", 25), ("1864", 100),
    ("1903e8", 1000), ("1a000f4240", 1000000), ("20", -1), ("29", -10), ("3863", -100),
    ("3903e7", -1000), ("f4", False), ("f5", True), ("f6", None), ("40", b""),
    ("4401020304", b"\x01\x02\x03\x04"), ("60", ""), ("6161", "a"), ("6449455446", "IETF"),
    ("62225c", '"\\'), ("62c3bc", "\u00fc"), ("63e6b0b4", "\u6c34"), ("64f0908591", "\U00010151"),
    ("80", []), ("83010203", [1, 2, 3]), ("8301820203820405", [1, [2, 3], [4, 5]]),
    ("826161a161626163", None),  # ["a", {"b": "c"}]: a map inside -> bad (listed below instead)
]  # fmt: skip
RFC_IN = [x for x in RFC_IN if x[0] != "826161a161626163"]
RFC_OUT = [
    ("1b000000e8d4a51000", c.E_TOO_LARGE),  # 1000000000000
    ("1bffffffffffffffff", c.E_TOO_LARGE),
    ("c249010000000000000000", c.E_BAD_MESSAGE),  # bignum tag
    ("3bffffffffffffffff", c.E_TOO_LARGE),
    ("f90000", c.E_BAD_MESSAGE), ("f93c00", c.E_BAD_MESSAGE), ("fa47c35000", c.E_BAD_MESSAGE),
    ("fb3ff199999999999a", c.E_BAD_MESSAGE), ("f97c00", c.E_BAD_MESSAGE),
    ("f7", c.E_BAD_MESSAGE), ("f0", c.E_BAD_MESSAGE), ("f8ff", c.E_BAD_MESSAGE),
    ("c074323031332d30332d32315432303a30343a30305a", c.E_BAD_MESSAGE),
    ("d74401020304", c.E_BAD_MESSAGE), ("a0", c.E_BAD_MESSAGE), ("a201020304", c.E_BAD_MESSAGE),
    ("826161a161626163", c.E_BAD_MESSAGE),
    ("98190102030405060708090a0b0c0d0e0f101112131415161718181819", c.E_TOO_LARGE),  # 25 items
    ("5f42010243030405ff", c.E_BAD_MESSAGE), ("7f657374726561646d696e67ff", c.E_BAD_MESSAGE),
    ("9fff", c.E_BAD_MESSAGE), ("9f018202039f0405ffff", c.E_BAD_MESSAGE),
    ("bf61610161629f0203ffff", c.E_BAD_MESSAGE),
]  # fmt: skip


def frame_streams() -> list[tuple[str, bytes, list[bytes], int, int, int]]:
    """(name, stream, payloads, crc_errors, dropped_bytes, max_payload)."""
    a = cbor2.dumps([c.MSG_ACK, 100, 4096, 1])
    d = cbor2.dumps([c.MSG_DATA, 70000, bytes(range(256)) * 4])
    fa, fd = frame(a), frame(d)
    bad_crc = bytearray(fd)
    bad_crc[40] ^= 0x01
    # A header announcing a long frame that swallows a real one: CRC fails, the inner frame is
    # still found because only the first byte of the failed candidate is dropped.
    fake = b"\xa5\x5a" + struct.pack("<HH", 200, 200 ^ 0xFFFF) + b"\x00" * 10
    long_tail = fake + fa + b"\x11" * (200 + 4 - 10 - len(fa))
    streams = [
        ("two_frames", fa + fd, [a, d], 0, 0, 4096),
        ("garbage_prefix", b"\x00\xff\xa5\x00" + fa, [a], 0, 4, 4096),
        ("sof_bytes_in_garbage", b"\xa5\xa5\x5a\xa5\x5a\x00\x00" + fa, [a], 0, 7, 4096),
        ("bad_nlen", b"\xa5\x5a\x05\x00\x00\x00" + fa, [a], 0, 6, 4096),
        ("len_zero", b"\xa5\x5a\x00\x00\xff\xff" + fa, [a], 0, 6, 4096),
        ("len_over_max", frame(bytes(300)) + fa, [a], 0, 310, 256),
        ("crc_corrupt_then_valid", bytes(bad_crc) + fa, [a], 1, len(bad_crc), 4096),
        ("frame_inside_bad_candidate", long_tail + fa, [a, a], 1, len(long_tail) - len(fa), 4096),
        ("payload_contains_sof", frame(b"\x82\x0f\xa5") + fa, [b"\x82\x0f\xa5", a], 0, 0, 4096),
    ]
    return streams


def main() -> None:
    lines = ['# name\tpayload_hex\tframe_hex\texpected (JSON; bytes as {"b": hex})']
    for name, msg in MESSAGES:
        p = cbor2.dumps(msg)
        lines.append(
            "\t".join([name, p.hex(), frame(p).hex(), json.dumps(js(msg), ensure_ascii=False)])
        )
    (HERE / "messages.hex").write_text("\n".join(lines) + "\n", encoding="utf-8")

    lines = ["# name\tpayload_hex\terror_code"]
    lines += [f"{n}\t{p.hex()}\t{code}" for n, p, code in BAD_MESSAGES]
    (HERE / "bad_messages.hex").write_text("\n".join(lines) + "\n", encoding="utf-8")

    lines = ["# RFC 8949 Appendix A: hex\tok\tJSON value | hex\terr\terror code"]
    for hx, v in RFC_IN:
        assert cbor2.loads(bytes.fromhex(hx)) == v
        lines.append(f"{hx}\tok\t{json.dumps(js(v), ensure_ascii=False)}")
    lines += [f"{hx}\terr\t{code}" for hx, code in RFC_OUT]
    (HERE / "cbor_rfc8949.hex").write_text("\n".join(lines) + "\n", encoding="utf-8")

    lines = ["# name\tstream_hex\tpayloads_hex (comma)\tcrc_errors\tdropped_bytes\tmax_payload"]
    for name, stream, pays, crc, dropped, maxp in frame_streams():
        lines.append(
            "\t".join(
                [
                    name,
                    stream.hex(),
                    ",".join(p.hex() for p in pays),
                    str(crc),
                    str(dropped),
                    str(maxp),
                ]
            )
        )
    (HERE / "frames.hex").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
