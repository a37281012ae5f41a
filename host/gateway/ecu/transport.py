"""Byte transports under the ECU client (smpclient-style small typed interface).

Public interface (stable):
    class Transport(Protocol):
        baud: int | None                     # line rate for figures (None = unknown/unpaced)
        def write(self, data: bytes) -> None
        def read(self, timeout: float) -> bytes   # >= 1 byte, or b"" after ``timeout`` seconds
        def reset_input(self) -> None
        def close(self) -> None
        bytes_written / bytes_read: int
    SerialTransport(url: str, baud: int | None = None)   # pyserial serial_for_url: tty, pty,
                                                          # socket://, rfc2217://, loop://
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import serial


@runtime_checkable
class Transport(Protocol):
    """What the ECU client needs from a byte link."""

    baud: int | None
    bytes_written: int
    bytes_read: int

    def write(self, data: bytes) -> None: ...

    def read(self, timeout: float) -> bytes: ...

    def reset_input(self) -> None: ...

    def close(self) -> None: ...


class SerialTransport:
    """A pyserial port opened by URL (device path, ``socket://``, ``rfc2217://``, ``loop://``)."""

    def __init__(self, url: str, baud: int | None = None, write_timeout: float = 60.0) -> None:
        self.url = url
        self.baud = baud
        self.bytes_written = 0
        self.bytes_read = 0
        try:
            self._port: Any = serial.serial_for_url(
                url, baudrate=baud or 115200, timeout=0, write_timeout=write_timeout
            )
        except (serial.SerialException, ValueError, OSError) as exc:
            from otalink.host.gateway.ecu.errors import EcuLinkError

            raise EcuLinkError(f"cannot open {url}: {exc}") from exc

    def write(self, data: bytes) -> None:
        try:
            self._port.write(data)
        except Exception as exc:  # pyserial URL handlers raise their own (loop://: queue.Full)
            from otalink.host.gateway.ecu.errors import EcuLinkError

            raise EcuLinkError(f"write to {self.url} failed: {exc}") from exc
        self.bytes_written += len(data)

    def read(self, timeout: float) -> bytes:
        """Wait up to ``timeout`` s for the first byte, then take whatever else is buffered."""
        port = self._port
        try:
            port.timeout = max(0.0, timeout)
            first: bytes = port.read(1)
            if not first:
                return b""
            waiting = port.in_waiting
            rest: bytes = b""
            if waiting:
                port.timeout = 0
                rest = port.read(waiting)
        except (serial.SerialException, OSError) as exc:
            from otalink.host.gateway.ecu.errors import EcuLinkError

            raise EcuLinkError(f"read from {self.url} failed: {exc}") from exc
        data = first + rest
        self.bytes_read += len(data)
        return data

    def reset_input(self) -> None:
        try:
            self._port.reset_input_buffer()
        except (serial.SerialException, OSError):
            pass

    def close(self) -> None:
        try:
            self._port.close()
        except (serial.SerialException, OSError):
            pass
