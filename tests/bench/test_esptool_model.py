"""The esptool figure is computed by running esptool's own write-flash code against an emulated
ESP32 on a virtual clock (bench/esptool_model.py): check the emulation keeps esptool honest."""

from __future__ import annotations

import random

import pytest

from bench import esptool_model as E


def test_random_image_is_written_verified_and_costed() -> None:
    image = random.Random(1).randbytes(48 * 1024)  # three whole 16 KiB blocks, no padding
    r = E.esptool_run(image, 921600, 0.0)
    assert r["computed"] is True
    # esptool sent at least the image, and the line time of what it sent bounds the time
    assert r["tx_bytes"] > len(image)
    assert r["seconds"] > len(image) * 10 / 921600
    # bootloader reset (0.1 s + 0.05 s), the stub upload at 115200, the hard reset (0.1 s)
    assert r["connect_seconds"] >= 0.15 and r["stub_seconds"] > 6000 * 10 / 115200
    assert r["whole_seconds"] > r["seconds"] + r["connect_seconds"] + r["stub_seconds"] + 0.1
    # 48 KiB from 0x10000: 12 sectors, no 64 KiB block (the stub erases blocks only when more
    # than a block remains): 12 x 45 ms; programming 192 pages x 0.4 ms
    assert r["erase_seconds"] == pytest.approx(12 * E.T_SECTOR_ERASE)
    assert r["program_seconds"] == pytest.approx(192 * E.T_PAGE_PROGRAM)


def test_latency_costs_every_round_trip() -> None:
    image = random.Random(2).randbytes(16 * 1024)
    fast = E.esptool_run(image, 921600, 0.0)
    slow = E.esptool_run(image, 921600, 0.008)
    # stop-and-wait: every command pays 16 ms, sync/detection/stub/flash/md5 alike
    assert slow["whole_seconds"] - fast["whole_seconds"] > 30 * 0.016


def test_compressible_firmware_beats_line_rate() -> None:
    image = (b"\x00" * 3000 + random.Random(3).randbytes(1000)) * 16
    r = E.esptool_run(image, 115200, 0.0)
    assert r["tx_bytes"] < len(image) and r["ratio"] > 1.5


def test_a_chip_that_loses_data_fails_the_md5(monkeypatch: pytest.MonkeyPatch) -> None:
    orig = E.VirtualEsp32._write

    def lossy(self: E.VirtualEsp32, chunk: bytes) -> float:
        return orig(self, bytes([chunk[0] ^ 1]) + chunk[1:])  # one bit of each chunk

    monkeypatch.setattr(E.VirtualEsp32, "_write", lossy)
    with pytest.raises(Exception, match=r"(?i)md5|hash|verif"):
        E.esptool_run(random.Random(4).randbytes(8192), 921600, 0.0)
