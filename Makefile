# `make compile` and `make test` work on a fresh machine: they create .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup compile check lint test clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

compile: $(STAMP)
	$(PY) -m compiler compile policies --out out

check: $(STAMP)
	$(PY) -m compiler check policies --out out

lint: $(STAMP)
	$(PY) -m ruff check compiler tests bench

test: $(STAMP) lint check
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
