class ProtocolError(Exception):
    code: int
    detail: int
    def __init__(self, code: int, detail: int = 0) -> None: ...
