# `make compile` and `make test` work on a fresh machine: they create .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup system-deps compile check lint test clean bench bench-quick

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP) system-deps

# Debian tools the compiler and tests run: graphviz draws peering.svg; bird2, iproute2,
# ferm and iptables prove the output; puppet applies examples/puppet's module in its test.
# Installed when missing and we are root (as in CI); elsewhere the missing ones are named,
# and the tests that need them say so.
SYSTEM_TOOLS := dot:graphviz bird:bird2 ip:iproute2 ferm:ferm iptables:iptables puppet:puppet
system-deps:
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $${t%%:*} >/dev/null 2>&1 || missing="$$missing $${t#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "missing system packages:$$missing (install them as root)"; fi; \
	fi

compile: $(STAMP) system-deps
	$(PY) -m compiler compile policies --out out

check: $(STAMP)
	$(PY) -m compiler check policies --out out
	$(PY) -m compiler lint policies
	$(PY) -m compiler fmt --check policies examples

lint: $(STAMP)
	$(PY) -m ruff check compiler tests bench

test: $(STAMP) system-deps lint check
	$(PY) -m pytest -q

# The benchmark suite of issue 7 (bench/README.md): tables on stdout and bench/RESULTS.md.
bench: $(STAMP) system-deps
	$(PY) bench/run.py --write

bench-quick: $(STAMP) system-deps
	$(PY) bench/run.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
