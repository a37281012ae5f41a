# otalink device agent: runs on each ECU (MicroPython); also importable on CPython for tooling.
