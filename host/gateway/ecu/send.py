"""What ``Fleet.transfer`` installs from a downloaded file: the hook's types and its default.

``send(line, assignment, path, install)`` returns the transfer's result; ``install`` streams
an image (``bytes``) or a ``Patch`` with the fleet's progress, stop checks and DEFER retries.
The default sends the file as the image; the campaign's (``campaign/delivery.py``) sends a
chosen patch and falls back to the full image.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from otalink.host.gateway.ecu.line import Line
from otalink.host.gateway.ecu.result import TransferResult
from otalink.host.gateway.ecu.uploader import Patch
from otalink.host.gateway.update.types import EcuAssignment

__all__ = ["Install", "Patch", "Send", "TransferResult", "send_image"]

Install = Callable[[bytes | Patch], TransferResult]
Send = Callable[[Line, EcuAssignment, Path, Install], TransferResult]


def send_image(line: Line, a: EcuAssignment, path: Path, install: Install) -> TransferResult:
    """The downloaded file is the image: install it."""
    return install(path.read_bytes())
