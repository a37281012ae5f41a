# otalink wire protocol: one implementation for CPython (gateway) and MicroPython (ECU).
# Imports here must exist on MicroPython too (tests/test_imports.py enforces it).
