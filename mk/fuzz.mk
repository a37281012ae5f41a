# Differential fuzz of the protocol decoders, CPython against MicroPython at 64k (tests/fuzz/).
# `make test` runs 20,000 inputs and `make soak` 1,000,000 (tests/fuzz/test_fuzz.py); this runs
# N more with a seed of your choice (printed; SEED=... repeats a run).
.PHONY: fuzz
N ?= 100000
fuzz: $(STAMP) mpy
	$(BIN)/python -m tests.fuzz.harness -n $(N) $(if $(SEED),--seed $(SEED),)

# What the UTF-8 check costs CBOR text decoding, under MicroPython at 64k (figures only).
.PHONY: bench-cbor-text
bench-cbor-text: $(STAMP) mpy
	MICROPYPATH=build/mpy $(BIN)/micropython -X heapsize=64k tests/fuzz/bench_text.py
