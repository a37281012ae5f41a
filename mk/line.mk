# Line area (issue 6): the serial-line benchmark alone, and the fault matrix alone.
.PHONY: bench-line test-line soak-line

bench-line: $(STAMP) mpy
	$(BIN)/python -m bench.bench_line

test-line: $(STAMP) mpy
	$(BIN)/pytest -n 2 -m "not slow" tests/sim/line tests/gateway/ecu $(PYTEST_ARGS)

soak-line: $(STAMP) mpy
	$(BIN)/pytest -n 2 -m slow -s tests/sim/line $(PYTEST_ARGS)
