# Two entry points for a fresh clone: `make demo` and `make test` (README).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: setup demo test claims docs bench clean

# The torch pin goes in first: a bare `torch` requirement would pull the CUDA build.
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test,docs]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/sgmlab demo

test: $(STAMP)
	$(BIN)/python -m pytest

# Comparisons against other libraries (tests/claims/): claims, kept apart from the unit tests.
claims: $(STAMP)
	$(BIN)/python -m pytest -m claims tests/claims

# The documentation site (mkdocs.yml) into site/, strict: a broken link or reference fails.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --quiet

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_core.py

clean:
	rm -rf $(VENV) results site
