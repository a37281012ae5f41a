# The exceptions of the device storage layer, under the names tests and tools import. The agent
# itself never loads this module (one module less, two names fewer interned for good): its
# modules import ProtocolError as DeviceError, and PowerCut lives with the flash emulator.
#   DeviceError: the protocol's ProtocolError under a second name (one class). .code is an
#     integer from protocol/codes.py the session puts on the wire unchanged (RESULT / ERROR);
#     .detail is a small integer for diagnosis (an offset, a slot index), never a string built
#     on the hot path.
#   PowerCut: raised by the flash emulator in "raise" cut mode (a BaseException: device/nor.py).
from otalink.device.nor import PowerCut  # noqa: F401
from otalink.protocol.errors import ProtocolError as DeviceError  # noqa: F401
