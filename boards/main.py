# otalink boot glue: copied to the board's filesystem root as /main.py by `otalink device deploy`.
# The board runs main.py after boot.py on every reset; this starts the ECU agent with the ECU
# config deploy wrote (otalink.json: ECU id, hardware id, board_path=board.json; the keys live in
# the files the profile's "keys" section names). The agent itself is in /lib/otalink (.mpy) or
# frozen into the firmware (boards/manifest.py). Ctrl-C on the REPL port stops it (deploy does
# that to update it). If the agent returns (config error, stop), the board stays in the REPL.

try:
    from otalink.device import main as _agent
except ImportError as e:
    print("otalink: agent not installed:", e)
else:
    _rc = _agent.main(["otalink", "otalink.json"])
    if _rc:
        print("otalink: agent stopped, status", _rc)
