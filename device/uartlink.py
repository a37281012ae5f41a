# Link adapter for boards: machine.UART (the interface is described in link.py, which opens it).
import time

try:
    from micropython import const
except ImportError:  # CPython (tooling only)

    def const(x):
        return x


_ETIMEDOUT = const(110)


class UartLink:
    def __init__(self, uart_id, baud, rxbuf, tx=None, rx=None):
        import machine

        kw = {"baudrate": baud, "rxbuf": rxbuf, "timeout": 0}
        if tx is not None:
            kw["tx"] = tx
        if rx is not None:
            kw["rx"] = rx
        self._u = machine.UART(uart_id, **kw)
        self._baud = baud

    def wait(self, timeout_ms):
        u = self._u
        deadline = time.ticks_add(time.ticks_ms(), timeout_ms)
        while not u.any():
            if time.ticks_diff(deadline, time.ticks_ms()) <= 0:
                return False
            time.sleep_ms(1)
        return True

    def readinto(self, buf, n):
        if not self._u.any():
            return 0
        return self._u.readinto(buf, n) or 0

    def write(self, buf, n, timeout_ms=2000):
        pos = 0
        deadline = time.ticks_add(time.ticks_ms(), timeout_ms)
        while pos < n:
            if time.ticks_diff(deadline, time.ticks_ms()) <= 0:
                raise OSError(_ETIMEDOUT)
            w = self._u.write(buf, pos, n - pos)
            pos += w or 0

    def stream(self):
        return self._u  # machine.UART is pollable: the asyncio loop waits on it

    def writable(self):
        try:
            return self._u.txdone()
        except AttributeError:
            return True

    def close(self):
        try:
            self._u.deinit()
        except Exception:
            pass
