# protocol area (owner: protocol engineer)
.PHONY: vectors test-protocol

# Regenerate the golden vectors from the independent reference encoder (cbor2 + zlib).
vectors: $(STAMP)
	$(BIN)/python -m tests.vectors.make_vectors

# The protocol tests on both runtimes, plus the MicroPython import walk.
test-protocol: $(STAMP) mpy
	$(BIN)/pytest -n 2 tests/protocol tests/test_imports.py $(PYTEST_ARGS)
