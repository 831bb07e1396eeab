# mailcarrier: two set-up commands, `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: all venv peers extras demo demo-fleet test lint typecheck unit bench clean

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,fast,lmdb,cdb,pgsql,mysql,ldap,tlsrpt,django,fleet,progress,metrics]'
	touch $(STAMP)

venv: $(STAMP)

# The berkeleydb package (hash:/btree: tables) compiles against Berkeley DB's headers, which
# `make peers` installs (Debian libdb5.3-dev): best effort, after the peers; without it the
# tests that need it skip. Tried again on every run until it is installed.
extras: venv peers
	@$(PY) -c 'import berkeleydb' 2>/dev/null || $(PY) -m pip install -q -e '.[all]' \
		|| echo "make: berkeleydb not installed (needs libdb5.3-dev: make peers as root);" \
			"tests of hash:/btree: tables will skip" >&2

# Real peers for tests (Debian postfix: smtpd + smtp-sink, postmap with postfix-lmdb and
# postfix-cdb; dovecot-lmtpd; libdb5.3-dev for `make extras`). Best effort:
# tests that need them skip cleanly when they cannot be installed (not root, no apt).
peers:
	bash scripts/install-peers.sh

demo: venv extras
	$(PY) demo/demo.py

# Fleet mode: a private redis-server, one receiving server and three `mailcarrier run` nodes on
# loopback sharing fleet_destination_concurrency_limit = 2 (needs redis-server: make peers).
demo-fleet: venv peers
	$(PY) demo/fleet.py

lint: venv
	$(VENV)/bin/ruff check src tests bench demo
	$(VENV)/bin/ruff format --check src tests bench demo
	$(VENV)/bin/mypy --strict src tests bench

typecheck: venv
	$(VENV)/bin/mypy --strict src tests bench

unit: venv
	scripts/loopback-only $(PY) -m pytest -x

# The tests run with only a loopback interface (scripts/loopback-only: unshare -n as root).
test: venv peers extras lint
	scripts/loopback-only $(PY) -m pytest

# Byte-compile first, as an installed package is: every `mailcarrier` the benchmarks start
# would otherwise compile its modules again when PYTHONDONTWRITEBYTECODE is set.
bench: venv peers extras
	$(PY) -m compileall -q src
	scripts/loopback-only $(PY) -m bench

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .mypy_cache .ruff_cache .pytest_cache
