"""Board profiles as the benches run them on the unix port (bench/profiles.py)."""

from __future__ import annotations

from otalink.host.tools.deploy.profile import load_board, rxbuf_needed

from bench import profiles


def test_uart_buffers_come_out_of_the_heap_on_rp2_and_stm32_only() -> None:
    for name in profiles.BOARDS:
        b = load_board(name)
        heap = profiles.agent_heap(b)
        if b.port in ("rp2", "stm32"):
            assert heap == b.heap_budget - b.uart.rxbuf - b.uart.txbuf - 2
        else:
            assert heap == b.heap_budget
        assert profiles.link_config(b) == {"max_payload": b.link.max_payload,
                                           "window": b.link.window}  # fmt: skip
        assert f"window {b.link.window} B" in profiles.describe(b)


def test_shipped_windows_cover_the_first_ack_and_carry_no_runt_frames() -> None:
    """unix, esp32, rp2: the window is a whole number of DATA chunks (max_payload - 16, so no
    short frame at every window boundary), at least 16 KiB - 128 (it must cover BEGIN's
    verification and erase at 921600 baud), and the UART receive buffer holds it."""
    for name in ("unix", "esp32", "rp2"):
        b = load_board(name)
        chunk = b.link.max_payload - 16
        assert b.link.window % chunk == 0, name
        assert b.link.window >= 16384 - 128, name
        assert b.uart.rxbuf >= rxbuf_needed(b.link.max_payload, b.link.window), name
