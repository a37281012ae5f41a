# The exception the device storage layer raises: the protocol's ProtocolError under a second name
# (one class, so the device loads and interns one). .code is an integer from protocol/codes.py
# the session puts on the wire unchanged (RESULT / ERROR); .detail is a small integer for
# diagnosis (an offset, a slot index), never a string built on the hot path.
from otalink.protocol.errors import ProtocolError as DeviceError  # noqa: F401


class PowerCut(BaseException):
    # Raised by the flash emulator in "raise" cut mode. It derives from BaseException so no
    # `except Exception` in the agent swallows it; after it the emulator refuses every operation,
    # so a `finally` block that touches flash raises again instead of writing after the cut.
    pass
