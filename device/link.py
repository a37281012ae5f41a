# Link adapters: the byte pipe between the session and the host, one small class per port.
#
# Every adapter offers the same calls, each bounded in time so the agent's loop never blocks
# forever on a dead line:
#   wait(timeout_ms) -> bool        True when bytes are ready to read (False after timeout_ms)
#   readinto(buf, n) -> count       never blocks: reads what is buffered, up to n (0 = nothing);
#                                   the shape FrameParser.readinto_from(stream, n) expects
#   write(buf, n, timeout_ms=T)     sends buf[:n] or raises OSError(ETIMEDOUT) after timeout_ms
# The hot path (one ACK per DATA frame) allocates nothing: poll via ipoll (reuses its result
# tuple), stream write(buf, off, len) instead of memoryview slices.
#   close()
#   stream() -> the object the asyncio loop polls for input (the agent parks its line task on it)
#   writable() -> bool    the line takes bytes now (the application port never waits for it)
# - UartLink (uartlink.py, imported only on boards: on the unix port its code and names would
#   sit in the heap for nothing): machine.UART (baud, rxbuf, pins from the board profile).
# - PtyLink: unix port (no machine.UART): a pseudo-terminal slave path opened raw with termios.
#   VMIN=0/VTIME=0 makes read() return what is buffered instead of waiting for a full buffer, and
#   select.poll supplies the timeout, so readinto never blocks.
import select
import time

try:
    from micropython import const
except ImportError:  # CPython (tooling only)

    def const(x):
        return x


_VTIME = const(5)  # termios c_cc indices on Linux
_VMIN = const(6)
_WCHUNK = const(256)  # pty writes in chunks, each after POLLOUT: a stalled reader cannot wedge us
_ETIMEDOUT = const(110)


class PtyLink:
    def __init__(self, path):
        import termios

        self.file = open(path, "r+b", buffering=0)
        fd = self.file.fileno()
        termios.setraw(fd)
        attr = termios.tcgetattr(fd)
        attr[6][_VMIN] = 0
        attr[6][_VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, attr)
        # rx / tx: the pollers for "readable" and "writable"
        self.rx = select.poll()
        self.rx.register(fd, select.POLLIN)
        self.tx = select.poll()
        self.tx.register(fd, select.POLLOUT)

    def wait(self, timeout_ms):
        for _fd, ev in self.rx.ipoll(timeout_ms):
            if ev & select.POLLIN and not ev & select.POLLHUP:
                return True
            # POLLHUP/POLLERR (Linux may set POLLIN with it; the read then fails with EIO): no
            # host on the other end (master closed); wait a little instead of spinning, the
            # runner keeps the pty pair across our restarts.
            time.sleep_ms(timeout_ms if timeout_ms < 50 else 50)
        return False

    def readinto(self, buf, n):
        try:
            return self.file.readinto(buf, n) or 0
        except OSError:
            return 0  # EIO while the master side is closed: same as "nothing yet"

    def write(self, buf, n, timeout_ms=2000):
        pos = 0
        deadline = time.ticks_add(time.ticks_ms(), timeout_ms)
        while pos < n:
            left = time.ticks_diff(deadline, time.ticks_ms())
            ready = False
            if left > 0:
                for _ in self.tx.ipoll(left):
                    ready = True
            if not ready:
                raise OSError(_ETIMEDOUT)
            step = n - pos
            if step > _WCHUNK:
                step = _WCHUNK
            w = self.file.write(buf, pos, step)
            pos += w or 0

    def stream(self):
        return self.file

    def writable(self):
        for _ in self.tx.ipoll(0):
            return True
        return False

    def close(self):
        try:
            self.file.close()
        except OSError:
            pass


def open_link(line):
    """The adapter for a config's "line" section: {"path": pty} or {"uart": id, "baud": ...}."""
    if "path" in line:
        return PtyLink(line["path"])
    from otalink.device.uartlink import UartLink  # boards only: the unix port never loads it

    return UartLink(
        line.get("uart", 1),
        line.get("baud", 115200),
        line.get("rxbuf", 2048),
        line.get("tx"),
        line.get("rx"),
    )
