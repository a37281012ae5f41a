# The one exception the protocol layer raises. Its .code is an integer from codes.py, so it can
# cross the wire unchanged (ERROR / RESULT messages); .detail is a small integer for diagnosis
# (a byte position, a field index, a length), never a string built on the hot path.


class ProtocolError(Exception):
    def __init__(self, code, detail=0):
        super().__init__(code, detail)
        self.code = code
        self.detail = detail

    def __str__(self):
        return "ProtocolError(code=%d, detail=%d)" % (self.code, self.detail)
