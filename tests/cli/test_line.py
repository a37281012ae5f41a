"""``otalink line`` (a real process): prints both pty paths, relays, prints counters."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import serial

OTALINK = str(Path(sys.executable).parent / "otalink")


def test_line_tool_relays_and_counts() -> None:
    p = subprocess.Popen(
        [OTALINK, "line", "--baud", "921600", "--latency-ms", "2", "--json", "--interval", "0.2",
         "--duration", "3"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert p.stdout is not None
        head = json.loads(p.stdout.readline())
        assert head["baud"] == 921600
        h = serial.Serial(head["host"], timeout=1)
        d = serial.Serial(head["device"], timeout=1)
        h.write(b"hello ecu")
        assert d.read(9) == b"hello ecu"
        d.write(b"hi")
        assert h.read(2) == b"hi"
        time.sleep(0.5)
        counters = [json.loads(line) for line in p.stdout]
    finally:
        p.wait(10)
    assert p.returncode == 0
    assert counters[-1]["bytes_h2d"] == 9 and counters[-1]["bytes_d2h"] == 2


def test_line_tool_rejects_bad_rates() -> None:
    r = subprocess.run([OTALINK, "line", "--ber", "2"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
