# Two entry points: `make bench` (default comparison) and `make test` (the test suite).
# Both create .venv on first use; nothing else needs to be installed but Python >= 3.11.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# extras installed with the package; CI adds the optional ray extra: make install EXTRAS=test,ray
EXTRAS ?= test

.PHONY: install bench test benchmark clean-venv

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)

bench: $(STAMP)
	$(PY) run_bench.py --workers 2 $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -m "not slow and not benchmark" $(ARGS)

benchmark: $(STAMP)
	$(PY) -m pytest benchmarks -m benchmark --benchmark-only $(ARGS)

clean-venv:
	rm -rf $(VENV)
