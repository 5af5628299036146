# The two commands a new user needs: `make serve` and `make test`.
# Both set the machine up first (Debian's Chromium, a virtual environment,
# the package with its extras), so each works on its own on a fresh clone.

VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed

.PHONY: serve test test-fast check setup clean bench

serve: setup
	$(VENV)/bin/safebrowse serve

# Everything CI runs: the linters, the type checker, then every test, slow ones included.
test: check
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# Day-to-day: the same checks and every test not marked slow.
test-fast: check
	$(VENV)/bin/python -m pytest -m "not slow" $(PYTEST_ARGS)

check: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	PYTHON=$(PYTHON) VENV=$(VENV) sh scripts/setup.sh
	touch $(STAMP)

clean:
	rm -rf $(VENV)

bench: setup
	$(VENV)/bin/python -m bench.loops
