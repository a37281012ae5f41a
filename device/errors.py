# The exception the device storage layer raises. .code is an integer from protocol/codes.py so the
# session can put it on the wire unchanged (RESULT / ERROR); .detail is a small integer for
# diagnosis (an offset, a slot index), never a string built on the hot path.


class DeviceError(Exception):
    def __init__(self, code, detail=0):
        super().__init__(code, detail)
        self.code = code
        self.detail = detail


class PowerCut(BaseException):
    # Raised by the flash emulator in "raise" cut mode. It derives from BaseException so no
    # `except Exception` in the agent swallows it; after it the emulator refuses every operation,
    # so a `finally` block that touches flash raises again instead of writing after the cut.
    pass
