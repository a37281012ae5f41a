# trust area (owner: trust engineer): repositories, update server, verification, downloads
.PHONY: test-trust bench-trust

test-trust: $(STAMP)
	$(BIN)/pytest -n 2 tests/gateway/update $(PYTEST_ARGS)

# check() latency, download MB/s (embedded server, nginx), resume efficiency over 10 cuts
bench-trust: $(STAMP)
	$(BIN)/python -m bench.bench_trust
