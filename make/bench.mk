# Fleet-scale benchmark: `make bench` runs the simulator, the exporter, the baseline and the floor at
# 10,000 environments and 10,000 agents and prints one table (also bench/results/latest.json and
# bench/RESULTS.md). Options through BENCH_ARGS, e.g. `make bench BENCH_ARGS=--quick` or
# `BENCH_ARGS="--environments 500 --agents 500"`. `make bench-profile` also records py-spy profiles of the
# exporter (py-spy is installed into the virtualenv for that; it is no dependency of the project).
# Included from the Makefile (uses its BIN and STAMP).

BENCH_ARGS ?=

.PHONY: bench bench-profile

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-profile: $(STAMP)
	$(BIN)/pip install --quiet py-spy
	$(BIN)/python -m bench --profile $(BENCH_ARGS)
