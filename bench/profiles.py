"""Board profiles as the benches run them on the MicroPython unix port.

    BOARDS                          the profiles the figures cover
    agent_heap(board) -> int        the -X heapsize standing for the board's heap budget
    link_config(board) -> dict      the ECU config keys that give the agent the board's link
    describe(board) -> str          "frame 4096 B, window 16320 B, heap 65536 B" (docs tables)

On rp2 and stm32 ``machine.UART`` allocates its receive and transmit ring buffers on the
MicroPython heap (ports/rp2/machine_uart.c: ``ringbuf_alloc`` = ``m_new``; ports/stm32 likewise),
so the agent's part of the budget is ``heap.budget - (rxbuf + 1) - (txbuf + 1)`` there. On esp32
the buffers belong to the ESP-IDF UART driver (``uart_driver_install``), outside the MicroPython
heap; on the unix port the line is a pty (kernel buffers). A bigger window needs a bigger
``uart.rxbuf`` (``rxbuf_needed``), so on rp2 and stm32 it comes out of the agent's heap.
"""

from __future__ import annotations

from typing import Any

from otalink.host.tools.deploy.profile import Board, load_board

BOARDS = ("unix", "esp32", "rp2", "stm32")
GC_HEAP_UART_PORTS = ("rp2", "stm32")


def agent_heap(board: Board, rxbuf: int | None = None) -> int:
    """Bytes of MicroPython heap the agent gets on ``board`` (``rxbuf``: another UART buffer)."""
    if board.port not in GC_HEAP_UART_PORTS:
        return board.heap_budget
    rx = board.uart.rxbuf if rxbuf is None else rxbuf
    return board.heap_budget - (rx + 1) - (board.uart.txbuf + 1)


def link_config(board: Board) -> dict[str, Any]:
    return {"max_payload": board.link.max_payload, "window": board.link.window}


def describe(board: Board) -> str:
    return (
        f"frame {board.link.max_payload} B, window {board.link.window} B, "
        f"heap {agent_heap(board)} B"
        + (f" (budget {board.heap_budget} B - UART buffers)" if board.port in GC_HEAP_UART_PORTS
           else "")
    )  # fmt: skip


def load(name: str) -> Board:
    return load_board(name)
