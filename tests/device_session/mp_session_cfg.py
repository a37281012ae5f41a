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


class RingLink(RingIn):
    # RingIn whose writes (the agent's replies) are kept in .out for the test to parse
    def __init__(self, size):
        super().__init__(size)
        self.out = bytearray()

    def write(self, buf, n, timeout_ms=0):
        self.out += bytes(buf[:n])


# the unix board's flash and slots as these tests lay them out (flash.geometry() input)
GEOM = {
    "size": 1114112,
    "erase_size": 4096,
    "write_size": 4,
    "state_sectors": 2,
    "slot_size": 524288,
    "slot_offsets": [65536, 589824],
    "max_data": 2048,
}
