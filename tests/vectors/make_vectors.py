"""Regenerate the golden vectors (CPython only): ``python -m tests.vectors.make_vectors``.

Independent of the otalink implementation on purpose: payloads are encoded by cbor2, frames are
assembled with struct + zlib.crc32 right here, only the integer codes come from codes.py. The
output files are committed; tests on both runtimes compare otalink against them.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import cbor2
import nacl.signing
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
V = c.PROTOCOL_VERSION

# A signed command (docs/protocol.md "Signed commands"), made with pynacl and cbor2 only: the
# command key's seed is bytes 0..31, the ECU "bms-1", its command nonce N16.
CMD_SEED = bytes(range(32))
_CMD_KEY = nacl.signing.SigningKey(CMD_SEED)
CMD_PUB = bytes(_CMD_KEY.verify_key)
CMD_KID = hashlib.sha256(CMD_PUB).digest()[:8]


def signed(t: int, ecu_id: str = "bms-1", nonce: bytes = N16) -> list[Any]:
    cmd = cbor2.dumps([1, t, ecu_id, nonce])
    return [t, cmd, CMD_KID, _CMD_KEY.sign(cmd).signature]


MESSAGES: list[tuple[str, list[Any]]] = [
    ("hello", [c.MSG_HELLO, V, N16, 4096]),
    ("hello_min_payload", [c.MSG_HELLO, V, N16, 256]),
    ("info", [c.MSG_INFO, b"\x8e" + bytes(40), SIG]),
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
    ("result", [c.MSG_RESULT, c.MSG_END, c.E_HASH_MISMATCH, 7, N16]),
    ("result_activate", [c.MSG_RESULT, c.MSG_ACTIVATE, c.OK, 0, N16[::-1]]),
    ("activate", signed(c.MSG_ACTIVATE)),
    ("reboot", signed(c.MSG_REBOOT)),
    ("confirm", signed(c.MSG_CONFIRM)),
    ("revert", signed(c.MSG_REVERT)),
    ("abort", signed(c.MSG_ABORT)),
    ("error", [c.MSG_ERROR, c.E_OUT_OF_WINDOW, 65536, c.MSG_DATA]),
    ("error_from_host", [c.MSG_ERROR, c.E_TIMEOUT, 0, 0]),
    ("status_req", [c.MSG_STATUS_REQ, N16[::-1]]),
    # issue 11: the application channel, an application's deferral, the receive probe
    ("app_request", [c.MSG_APP, 1, 1, b"soc?"]),
    ("app_event", [c.MSG_APP, 1, 0, b"\x42\x2a"]),
    ("app_reply_max", [c.MSG_APP, 255, 70000, bytes(i & 255 for i in range(256))]),
    ("app_empty", [c.MSG_APP, 24, 24, b""]),
    ("defer", [c.MSG_DEFER, c.MSG_BEGIN, 30, "actuator moving"]),
    ("probe", [c.MSG_PROBE, 262144, SHA, c.COMP_DEFLATE_SEG, 100000]),
]

# payload bytes, expected error code
BAD_MESSAGES: list[tuple[str, bytes, int]] = [
    ("empty_array", b"\x80", c.E_BAD_MESSAGE),
    ("not_array", b"\x01", c.E_BAD_MESSAGE),
    ("unknown_type", cbor2.dumps([0x42, 1]), c.E_UNKNOWN_TYPE),
    ("type_zero", cbor2.dumps([0]), c.E_UNKNOWN_TYPE),
    ("type_text", cbor2.dumps(["hello"]), c.E_BAD_MESSAGE),
    ("hello_short_nonce", cbor2.dumps([1, V, bytes(15), 4096]), c.E_BAD_MESSAGE),
    ("hello_arity", cbor2.dumps([1, V, N16]), c.E_BAD_MESSAGE),
    ("hello_small_payload", cbor2.dumps([1, V, N16, 255]), c.E_BAD_MESSAGE),
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
    # commands: an unsigned (version 1) command or any other arity is E_CMD_AUTH; a signed one
    # whose fields are out of shape is E_BAD_MESSAGE / E_TOO_LARGE like any message
    ("activate_unsigned", cbor2.dumps([10]), c.E_CMD_AUTH),
    ("reboot_unsigned", cbor2.dumps([11]), c.E_CMD_AUTH),
    ("activate_extra", cbor2.dumps([10, 0]), c.E_CMD_AUTH),
    ("abort_no_sig", cbor2.dumps(signed(14)[:3]), c.E_CMD_AUTH),
    ("confirm_extra_field", cbor2.dumps([*signed(12), 0]), c.E_CMD_AUTH),
    ("confirm_short_keyid", cbor2.dumps([12, b"\x01", KID[:7], SIG]), c.E_BAD_MESSAGE),
    ("revert_short_sig", cbor2.dumps([13, b"\x01", KID, SIG[:63]]), c.E_BAD_MESSAGE),
    ("revert_cmd_too_long", cbor2.dumps([13, bytes(97), KID, SIG]), c.E_TOO_LARGE),
    ("activate_cmd_empty", cbor2.dumps([10, b"", KID, SIG]), c.E_BAD_MESSAGE),
    ("activate_cmd_text", cbor2.dumps([10, "x", KID, SIG]), c.E_BAD_MESSAGE),
    ("error_v1_arity", cbor2.dumps([15, 20, 0]), c.E_BAD_MESSAGE),
    ("result_v1_arity", cbor2.dumps([9, 8, 0, 0]), c.E_BAD_MESSAGE),
    ("result_short_nonce", cbor2.dumps([9, 8, 0, 0, bytes(15)]), c.E_BAD_MESSAGE),
    ("app_channel_256", cbor2.dumps([17, 256, 1, b"x"]), c.E_BAD_MESSAGE),
    ("app_data_257", cbor2.dumps([17, 1, 1, bytes(257)]), c.E_TOO_LARGE),
    ("app_text_data", cbor2.dumps([17, 1, 1, "x"]), c.E_BAD_MESSAGE),
    ("app_arity", cbor2.dumps([17, 1, b"x"]), c.E_BAD_MESSAGE),
    ("defer_reason_49", cbor2.dumps([18, 3, 30, "r" * 49]), c.E_TOO_LARGE),
    ("defer_reason_bytes", cbor2.dumps([18, 3, 30, b"r"]), c.E_BAD_MESSAGE),
    ("probe_short_sha", cbor2.dumps([19, 1, SHA[:31], 0, 1]), c.E_BAD_MESSAGE),
    ("probe_compression_3", cbor2.dumps([19, 1, SHA, 3, 1]), c.E_BAD_MESSAGE),
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
