# Soak: `make soak` runs the exporter against the simulator (each in its own process) with churn and
# rotating faults for SOAK_SECONDS (default 30 minutes), then reports resident memory, open file
# descriptors and sockets, asyncio tasks and error lines, and fails when a target is missed (memory +10 %
# after the warm-up, any growth of sockets or tasks, any error line).
# Included from the Makefile (uses its BIN and STAMP).

SOAK_SECONDS ?= 1800

.PHONY: soak

soak: $(STAMP)
	SOAK_SECONDS=$(SOAK_SECONDS) $(BIN)/python -m bench.soak
