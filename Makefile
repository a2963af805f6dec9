# Two commands do all the set-up: `make demo` and `make test`.
# Both create .venv, install the package with what it needs, and install
# redis-server, chromium, nginx, openssl, Node.js and npm from Debian's
# packages when they are missing and we are root, and the browser client's
# npm packages from its committed lock file (clients/js/package-lock.json).

VENV    ?= .venv
PYTHON  ?= python3
BIN      = $(VENV)/bin
STAMP    = $(VENV)/.installed-stamp
JS       = clients/js
JSSTAMP  = $(JS)/node_modules/.installed-stamp
# Test processes (pytest-xdist). The suite mostly waits (heartbeats, timeouts,
# servers starting), so a 2-core machine runs 4 well (6 were 1.3x quicker but
# the timing tests flaked more on 2 cores); each worker has its own servers and
# ports, and tests/scheduling.py hands out the longest first.
WORKERS ?= 4

.PHONY: demo test lint types docs unit e2e js js-build bench bench-quick soak chaos matrix clean system-deps redis-server

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,docs]'
	touch $(STAMP)

redis-server:
	@command -v redis-server >/dev/null 2>&1 || $(MAKE) --no-print-directory system-deps

system-deps:
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	[ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	command -v openssl >/dev/null 2>&1 || missing="$$missing openssl"; \
	command -v curl >/dev/null 2>&1 || missing="$$missing curl"; \
	command -v node >/dev/null 2>&1 || missing="$$missing nodejs"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing from Debian's packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing:$$missing (apt-get install$$missing); browser and nginx tests skip without them"; \
	    command -v redis-server >/dev/null 2>&1 || exit 1; \
	  fi; \
	fi

$(JSSTAMP): $(JS)/package-lock.json $(JS)/package.json
	cd $(JS) && npm ci --no-audit --no-fund --loglevel=error
	touch $(JSSTAMP)

# The npm package's packages (React, esbuild, TypeScript, the AI SDK), locked.
js: system-deps $(JSSTAMP)

# Rebuild clients/js/dist and the served static files after changing clients/js/src.
js-build: js
	cd $(JS) && npm run build

demo: $(STAMP) redis-server
	sh examples/demo/run.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy

docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

unit: $(STAMP) system-deps js
	$(BIN)/pytest -n $(WORKERS) -m "not e2e"

e2e: $(STAMP) system-deps js
	$(BIN)/pytest -n $(WORKERS) -m e2e

test: $(STAMP) system-deps js lint types docs
	$(BIN)/pytest -n $(WORKERS)

bench: $(STAMP) system-deps
	$(BIN)/python -m bench.suite

bench-quick: $(STAMP) system-deps
	$(BIN)/python -m bench.suite --quick

soak: $(STAMP) system-deps
	$(BIN)/python -m bench.soak --minutes 10

chaos: $(STAMP) system-deps
	$(BIN)/python -m bench.chaos --minutes 2 --failovers 60

# Python 3.10-3.13 x every dependency at its floor, at its newest release, and
# redis-py 7: the quick tier in a fresh venv each (harness/matrix.py).
matrix: $(STAMP) redis-server
	$(BIN)/python -m harness.matrix

clean:
	rm -rf $(VENV) docs/_build .pytest_cache .mypy_cache .ruff_cache .demo $(JS)/node_modules
