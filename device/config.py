# ECU configuration: one JSON file per ECU (written by host/ecusim make_ecu_config, or by
# `otalink deploy` on a board), merged over its board profile. Schema: docs/device.md
# "ECU configuration". Values are validated here once, so the session can trust them.
import json

try:
    from micropython import const
except ImportError:  # CPython (tooling only)

    def const(x):
        return x


_MAX_KEYS = const(8)
# (key, default, least) of the component's times in ms
_TIMES = const((("wdt_ms", 5000, 100), ("trial_ms", 300000, 1000), ("alive_ms", 5000, 100),
                ("poll_ms", 50, 1), ("safe_ms", 2000, 10), ("keep_ms", 60000, 0)))  # fmt: skip


class ConfigError(Exception):
    pass


# (Short, reused parameter names on purpose: every distinct name is a qstr the heap keeps.)
def _unhex(text, n, k):
    try:
        b = bytes.fromhex(text)
    except Exception:
        raise ConfigError(k)
    if len(b) != n:
        raise ConfigError(k)
    return b


def _load_json(path):
    with open(path) as f:
        return json.load(f)


def _join(a, b):
    # b relative to the directory of file a (absolute b as is)
    if not b or b[0] == "/":
        return b
    i = a.rfind("/")
    return b if i < 0 else a[: i + 1] + b


def _board(cfg, path):
    # "board": {...} inline profile, or "board_path": file, or "board": name looked up under
    # "boards_dir" (default: <config dir>/boards, then ./boards).
    b = cfg.get("board")
    if isinstance(b, dict):
        return b
    bp = cfg.get("board_path")
    if bp:
        return _load_json(_join(path, bp))
    if isinstance(b, str):
        dirs = []
        if cfg.get("boards_dir"):
            dirs.append(_join(path, cfg["boards_dir"]))
        dirs.append(_join(path, "boards"))
        dirs.append("boards")
        for d in dirs:
            try:
                return _load_json(d + "/" + b + "/board.json")
            except OSError:
                pass
        raise ConfigError("board " + b)
    return {}


class Config:
    """Validated ECU config. Attributes are documented in docs/device.md."""

    def __init__(self, raw, board=None, base=""):
        b = board or {}
        self.raw = raw
        self.board = b
        link = b.get("link") or {}
        self.ecu_id = raw.get("ecu_id")
        self.hw_id = raw.get("hw_id", b.get("hw_id"))
        if not isinstance(self.ecu_id, str) or not isinstance(self.hw_id, str):
            raise ConfigError("ecu_id/hw_id")
        if not self.ecu_id or not self.hw_id or len(self.ecu_id) > 32 or len(self.hw_id) > 32:
            raise ConfigError("ecu_id/hw_id length")
        # board "keys": {"store": "file", "ecu_key": path, "director_keys": path, "command_keys":
        # path}: the ECU seed as 32 raw bytes, the Director and command keys as concatenated
        # 32-byte public keys (docs/device.md).
        k = b.get("keys") or {}
        fseed = None
        fpubs = []
        if k.get("store") == "file":
            try:
                with open(k["ecu_key"], "rb") as f:
                    fseed = f.read()
                with open(k["director_keys"], "rb") as f:
                    kr = f.read()
                fpubs = [kr[i : i + 32] for i in range(0, len(kr) - 31, 32)]
            except (OSError, KeyError):
                pass
        if "ecu_seed" in raw:
            self.ecu_seed = _unhex(raw["ecu_seed"], 32, "ecu_seed")
        elif fseed and len(fseed) == 32:
            self.ecu_seed = fseed
        else:
            raise ConfigError("ecu_seed")
        if "director_keys" in raw:
            keys = raw["director_keys"]
            if not isinstance(keys, list):
                raise ConfigError("director_keys")
            self.director_keys = [_unhex(k, 32, "director_keys") for k in keys]
        else:
            self.director_keys = fpubs
        if not self.director_keys or len(self.director_keys) > _MAX_KEYS:
            raise ConfigError("director_keys")
        # Command keys (docs/device.md "Signed commands"): who may ACTIVATE, REBOOT, CONFIRM,
        # REVERT, ABORT. Config "command_keys" (hex), else the board's keys.command_keys file
        # (concatenated 32-byte keys); none at all: every command is refused (E_CMD_AUTH).
        if "command_keys" in raw:
            keys = raw["command_keys"]
            if not isinstance(keys, list) or len(keys) > _MAX_KEYS:
                raise ConfigError("command_keys")
            self.command_keys = [_unhex(k, 32, "command_keys") for k in keys]
        else:
            self.command_keys = []
            if k.get("store") == "file":
                try:
                    with open(k["command_keys"], "rb") as f:
                        kr = f.read()
                    self.command_keys = [kr[i : i + 32] for i in range(0, len(kr) - 31, 32)]
                except (OSError, KeyError):
                    pass
            if len(self.command_keys) > _MAX_KEYS:
                raise ConfigError("command_keys")
        self.threshold = raw.get("director_threshold", 1)
        if not isinstance(self.threshold, int) or not (
            1 <= self.threshold <= len(self.director_keys)
        ):
            raise ConfigError("director_threshold")
        self.max_payload = raw.get("max_payload", link.get("max_payload", 4096))
        if not (256 <= self.max_payload <= 8192):
            raise ConfigError("max_payload")
        self.window = raw.get("window", link.get("window", 2 * self.max_payload))
        if self.window < self.max_payload:
            raise ConfigError("window")
        self.time_floor = raw.get("time_floor", 0)  # provisioning time: nothing older is valid
        self.idle_ms = raw.get("idle_ms")  # None: T_IDLE_MS
        self.run_ms = raw.get("run_ms", -1)  # -1: serve until REBOOT
        # The component (issue 11, docs/device.md "Loader and supervisor"): the watchdog's
        # timeout, the trial's deadline for a CONFIRM, how long the application may go without
        # alive(), the poll form's period, the bound of on_activate, how long an interrupted
        # transfer keeps its RAM state after the idle timeout.
        for k, dflt, lo in _TIMES:
            v = raw.get(k, dflt)
            if not isinstance(v, int) or v < lo:
                raise ConfigError(k)
            setattr(self, k, v)
        if "line" in raw:
            self.line = raw["line"]
        else:
            u = b.get("uart") or {}
            if u.get("kind") == "pty":
                raise ConfigError("line: the unix port needs a pty path")
            self.line = {
                "uart": u.get("id", 1),
                "baud": u.get("baud", 115200),
                "rxbuf": u.get("rxbuf", 2048),
                "tx": u.get("tx"),
                "rx": u.get("rx"),
            }
        # Flat geometry for Slots/flash (keys of device/flash.py DEFAULTS), from the board's
        # "flash" and "slots" sections, then the ECU config's "flash" section on top.
        g = {}
        bf = b.get("flash") or {}
        for k in bf:
            g[k] = bf[k]
        bs = b.get("slots") or {}
        if "size" in bs:
            g["slot_size"] = bs["size"]
        if "offsets" in bs:
            g["slot_offsets"] = bs["offsets"]
        for k in ("state_offset", "state_sectors"):
            if k in bs:
                g[k] = bs[k]
        if "trial_boots" in b:
            g["trial_boots"] = b["trial_boots"]
        g["window"] = self.window
        g["max_data"] = self.max_payload
        rf = raw.get("flash") or {}
        for k in rf:
            g[k] = rf[k]
        if "path" in g:
            g["path"] = _join(base, g["path"])
        self.geom = g


def load(path):
    raw = _load_json(path)
    if not isinstance(raw, dict):
        raise ConfigError("not an object")
    return Config(raw, _board(raw, path), path)
