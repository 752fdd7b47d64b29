# Two commands: `make demo` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STAMP_TEST := $(VENV)/.installed-test

.PHONY: demo test lint unit dashboards docs dist clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(STAMP_TEST): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(STAMP)

demo: $(STAMP)
	$(BIN)/lenses-hq-exporter demo

lint: $(STAMP_TEST)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy exporter

unit: $(STAMP_TEST)
	$(BIN)/pytest -q

test: lint unit

dashboards: $(STAMP_TEST)
	$(BIN)/python -m dashboards.generate

docs: $(STAMP_TEST)
	$(BIN)/python -m exporter.docs > docs/metrics.md

# The sdist and the wheel, checked as an index would check them.
dist: $(STAMP_TEST)
	rm -f dist/lenses_hq_exporter-* dist/lenses-hq-exporter-*
	$(BIN)/python -m build --sdist --wheel --outdir dist/ .
	$(BIN)/python -m twine check --strict dist/lenses_hq_exporter-*

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache

include make/image.mk
include make/bench.mk
include make/soak.mk
