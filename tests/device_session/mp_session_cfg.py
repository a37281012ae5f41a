# Session settings and a link shared by the MicroPython session tests (not a test module itself).
import micropython


class Cfg:
    ecu_id = "bms-1"
    hw_id = "hw-1"
    max_payload = 2048
    window = 8192
    time_floor = 0

    def __init__(self, pub, seed):
        self.director_keys = [pub]
        self.command_keys = []  # (no command in these tests: each would be refused, E_CMD_AUTH)
        self.threshold = 1
        self.ecu_seed = seed


class RingIn:
    # The input side of a link adapter over a RingIO (tests put frames into .ring): reads without
    # allocating. Subclasses add write(buf, n, timeout_ms).
    def __init__(self, size):
        self.ring = micropython.RingIO(size)

    def wait(self, timeout_ms):
        return self.ring.any() > 0

    def readinto(self, buf, n):
        k = self.ring.any()
        if k > n:
            k = n
        return self.ring.readinto(buf, k) if k else 0

    def close(self):
        pass
