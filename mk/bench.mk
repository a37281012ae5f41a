# Benchmarks (issue 10, part 4): every figure goes to build/bench/ only; `make bench` and
# `make test` never write docs/. The figures committed in docs/ are refreshed on purpose:
#   make bench-quick     the line benchmark in one pass (one run per line, no mpremote/vehicle)
#   make bench-report    render build/bench/benchmarks.md + bench_line.png again from
#                        build/bench/results.json (e.g. to add the `make bench-boards` table)
#   make docs-figures    build/bench/benchmarks.md -> docs/benchmarks.md, build/bench/bench_line.png
#                        and the README screenshots (test-artifacts/docs-img/*.png, set aside by
#                        the browser tests) -> docs/img/; then commit them
# The whole refresh on a quiet machine: make bench-boards bench docs-figures
.PHONY: bench-quick bench-report docs-figures

bench-quick: $(STAMP) mpy
	$(BIN)/python -m bench.bench_line --quick

bench-report: $(STAMP)
	$(BIN)/python -m bench.bench_line --report-only

docs-figures: $(STAMP)
	$(BIN)/python -m bench.docs_figures
