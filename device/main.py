# The historical entry of the ECU agent, kept as an alias of the loader (device/loader.py) so
# every runner, test and board that starts `-m otalink.device.main CONFIG.json` (or calls
# main.main(argv)) boots the component: loader -> boot decision -> watchdog -> the slot's agent
# (or the recovery agent) beside the application. Exit statuses: device/loader.py.
import sys

from otalink.device.loader import EXIT_CONFIG, EXIT_RESET, EXIT_STOP, main  # noqa: F401

if __name__ == "__main__":
    sys.exit(main(sys.argv))
