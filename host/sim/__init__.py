"""Simulators for the demo, tests and benches: the serial line, the ECU runner, the dev board."""
