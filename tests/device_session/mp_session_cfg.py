# Session settings shared by the MicroPython session tests (not a test module itself).


class Cfg:
    ecu_id = "bms-1"
    hw_id = "hw-1"
    max_payload = 2048
    window = 8192
    time_floor = 0

    def __init__(self, pub, seed):
        self.director_keys = [pub]
        self.threshold = 1
        self.ecu_seed = seed
