# Two commands for a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint unit system-deps lock clean bench figures

setup: $(STAMP)

# The venv is built from the hashed lock file only; the project itself is installed
# without dependencies on top of it, so nothing unpinned sneaks in.
$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Debian packages the tests use: a real Prometheus and promtool (integration tests),
# docker-compose (a real Compose implementation checks the compose stack; no engine
# needed). Installed where we can (root with apt); elsewhere those tests skip loudly,
# except under CI=true where they fail.
SYSTEM_PACKAGES := prometheus docker-compose

system-deps:
	@if command -v prometheus >/dev/null && command -v promtool >/dev/null \
	    && command -v docker-compose >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's $(SYSTEM_PACKAGES) (for the integration and deploy tests)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null) \
	    || echo "WARNING: could not install $(SYSTEM_PACKAGES); the tests that need them will skip (fail under CI=true)"; \
	else echo "WARNING: $(SYSTEM_PACKAGES) not installed and not root; the tests that need them will skip (fail under CI=true)"; fi

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: setup
	$(BIN)/pytest -q

test: setup system-deps lint unit

demo: setup
	$(BIN)/autoscaler simulate simulations/scenarios/demo.yaml --report out/demo-report.html

bench: setup
	$(BIN)/python benchmarks/forecast_leaderboard.py

# Regenerate every page of docs/benchmarks/ and the index docs/benchmarks.md from the
# current code (one run of each benchmark script; ~30 minutes on 2 shared cores).
# FIGURES_ARGS narrows it, e.g. FIGURES_ARGS="--areas cost-guard".
# Regenerates every table in docs/benchmarks/ (~15 minutes on 2 cores). The API load
# figures need Debian's wrk, installed here like the test tools.
figures: setup system-deps
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } \
	  || echo "WARNING: wrk not installed; the API load page cannot be regenerated"
	nice -n 10 $(BIN)/python benchmarks/figures.py $(FIGURES_ARGS)

# Regenerate the lock file after changing dependencies in pyproject.toml.
lock:
	uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 -o requirements.lock

clean:
	rm -rf $(VENV) out .mypy_cache .ruff_cache .pytest_cache
