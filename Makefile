# The two commands a new user needs: `make serve` and `make test`.
# Both set the machine up first (Debian's Chromium, a virtual environment,
# the package with its extras), so each works on its own on a fresh clone.

VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed

.PHONY: serve test setup clean

serve: setup
	$(VENV)/bin/safebrowse serve

test: setup
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	PYTHON=$(PYTHON) VENV=$(VENV) sh scripts/setup.sh
	touch $(STAMP)

clean:
	rm -rf $(VENV)

.PHONY: bench
bench: setup
	$(VENV)/bin/python -m bench.compare
