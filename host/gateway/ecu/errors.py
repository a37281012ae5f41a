"""Errors of the ECU client, each carrying a stable string ``code`` and the wire integer.

Public interface (stable):
    EcuError(wire_code: int, detail: int | str = 0, message: str = "")   .code str, .wire_code int
      EcuRejected   the device refused a request (authenticity, policy, state; RESULT/ERROR code)
                    -- the ``DeviceRejected`` family (``ecu_rejected.e_*``)
        EcuDeferred   the ECU's application deferred the request (DEFER): E_DEFERRED,
                      .request_type .retry_after_s .reason (``ecu_rejected.e_deferred``)
      EcuLinkError  no usable reply: timeouts, link loss, retries exhausted (wire_code E_TIMEOUT)
                    -- the ``TransportError`` family (``ecu_link.e_*``)
      EcuProtocolError  a malformed or unexpected reply (wire_code E_BAD_MESSAGE)
                    -- the ``TransportError`` family (``ecu_protocol.e_*``)
    error_name(wire_code) -> "E_SIG_INVALID" ...
"""

from __future__ import annotations

from otalink.host import errors as root
from otalink.protocol import codes

_NAMES: dict[int, str] = {
    int(value): name
    for name, value in vars(codes).items()
    if name.startswith("E_") and isinstance(value, int)
}
_NAMES[codes.OK] = "OK"
# what a (code, detail) pair says when the detail names a cause (other details show as numbers)
_DETAILS: dict[tuple[int, int], str] = {
    (codes.E_INTERNAL, codes.INTERNAL_NO_MEMORY): "E_INTERNAL: the ECU ran out of memory",
}


def error_name(wire_code: int) -> str:
    """The ``codes.py`` name of a wire error code ("E_UNKNOWN_<n>" when not in the table)."""
    return _NAMES.get(wire_code, f"E_UNKNOWN_{wire_code}")


class EcuError(root.OtalinkError):
    """Base of every ECU client error; ``wire_code`` is the integer from ``protocol/codes.py``
    (no family of its own: each is a ``DeviceRejected`` or a ``TransportError``)."""

    family = "ecu"

    def __init__(self, wire_code: int, detail: int | str = 0, message: str = "") -> None:
        self.wire_code = int(wire_code)
        self.detail = detail
        self.code = f"{self.family}.{error_name(self.wire_code).lower()}"
        named = _DETAILS.get((self.wire_code, detail)) if isinstance(detail, int) else None
        text = message or named or error_name(self.wire_code)
        super().__init__(f"{text} (code {self.wire_code}, detail {detail})")
        self.detail = detail  # the wire's detail, not the text


class EcuRejected(EcuError, root.DeviceRejected):
    """The device answered with an error code (RESULT code != OK or an ERROR message)."""

    family = "ecu_rejected"


class EcuDeferred(EcuRejected):
    """The ECU's application deferred the request (a DEFER answering it, e.g. BEGIN while an
    actuator moves): nothing changed on the ECU; retry after ``retry_after_s`` by policy."""

    def __init__(self, request_type: int, retry_after_s: int, reason: str) -> None:
        super().__init__(codes.E_DEFERRED, retry_after_s, f"deferred by the ECU: {reason}")
        self.request_type = request_type
        self.retry_after_s = retry_after_s
        self.reason = reason


class EcuLinkError(EcuError, root.TransportError):
    """No usable reply from the device: timeout, link loss, retries exhausted."""

    family = "ecu_link"

    def __init__(self, message: str, wire_code: int = codes.E_TIMEOUT, detail: int = 0) -> None:
        super().__init__(wire_code, detail, message)


class EcuProtocolError(EcuError, root.TransportError):
    """The device's reply does not follow the protocol (bad arity/types, unexpected message)."""

    family = "ecu_protocol"

    def __init__(self, message: str, wire_code: int = codes.E_BAD_MESSAGE) -> None:
        super().__init__(wire_code, 0, message)
