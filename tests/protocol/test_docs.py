"""docs/protocol.md stays consistent with protocol/codes.py and the vectors it quotes."""

from __future__ import annotations

import re
from pathlib import Path

from otalink.protocol import codes, frame, messages

DOC = (Path(__file__).resolve().parent.parent.parent / "docs" / "protocol.md").read_text()


def test_error_table_lists_every_code_with_its_value() -> None:
    table = dict(re.findall(r"^\| (\d+) \| (OK|E_[A-Z_]+) \|", DOC, re.MULTILINE))
    in_code = {str(v): k for k, v in vars(codes).items() if k == "OK" or k.startswith("E_")}
    assert table == in_code


def test_message_table_matches_codes() -> None:
    rows = re.findall(r"^\| 0x([0-9A-F]{2}) \| ([A-Z_]+) \|", DOC, re.MULTILINE)
    assert {name: int(h, 16) for h, name in rows} == {
        k[4:]: v for k, v in vars(codes).items() if k.startswith("MSG_")
    }


def test_quoted_example_frames_are_real() -> None:
    assert "a5 5a 08 00 f7 ff 84 05 18 64 19 10 00 01 35 55 48 86" in DOC
    assert frame.frame(messages.ack(100, 4096, 1)).hex(" ") in DOC
    assert frame.frame(messages.data(4080, b"\x01\x02")).hex(" ") in DOC
    err = messages.error(codes.E_OUT_OF_WINDOW, 8160, codes.MSG_DATA)
    assert frame.frame(err).hex(" ") in DOC
