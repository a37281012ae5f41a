# The ECU config, read at start-up by the loader (its boot decision, watchdog and supervisor
# settings) and by the agent (its line, keys and limits), each copying what it needs into a
# small Settings and dropping this module and config.py again (on the unix port loaded code
# lives in the GC heap):
#   settings(path) -> (Settings, line, geom) | None (bad config: already printed)
#   settings(path, keys) -> (Settings of those keys only, None, None) | None
#   mem_report(live)   the bench's memory hook (one stderr line + the qstr pools)
import gc
import sys

try:
    from micropython import const
except ImportError:  # CPython (tooling only)

    def const(x):
        return x


# What the agent and the loader read of the config (docs/device.md "ECU configuration")
_KEEP = const(("ecu_id", "hw_id", "ecu_seed", "director_keys", "command_keys", "threshold",
               "max_payload", "window", "time_floor", "idle_ms", "run_ms", "keep_ms", "safe_ms",
               "wdt_ms", "trial_ms", "alive_ms", "poll_ms"))  # fmt: skip


class Settings:
    # The config values read at start-up, copied. No methods: an instance keeps nothing of this
    # module's code alive (a config.Config would keep all of config.py).
    pass


def settings(path, keep=None):
    # config.py and the JSON are referenced only in this frame. keep: only these keys (the
    # awake agent's read again, engine.py: a smaller object for as long as it is awake)
    from otalink.device import config

    try:
        cfg = config.load(path)
    except (config.ConfigError, OSError, ValueError) as e:
        print("otalink: config:", e)
        return None
    s = Settings()
    for k in keep or _KEEP:
        setattr(s, k, getattr(cfg, k))
    if keep:
        return s, None, None
    s.memtrace = cfg.raw.get("memtrace")
    if not s.memtrace:
        try:
            import os

            s.memtrace = os.getenv("OTALINK_MEMTRACE")
        except (ImportError, AttributeError):
            pass
    s.bundle_dir = cfg.raw.get("bundle_dir")
    return s, cfg.line, cfg.geom


def mem_report(live):
    # Bench hook: one line on stderr. live = highest live heap (after a collection) seen
    # after each handled message; heap = the -X heapsize the agent runs under.
    gc.collect()
    heap = gc.mem_alloc() + gc.mem_free()
    sys.stderr.write("otalink-mem peak_live=%d heap=%d\n" % (live, heap))
    try:
        import micropython

        micropython.qstr_info()  # stdout: qstr pools, counted in the live heap on the unix port
    except (ImportError, AttributeError):
        pass
