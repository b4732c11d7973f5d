# The two commands a newcomer needs: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
# What serving needs (`make run`), then the test and benchmark tools on top (`make test`).
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
# axe-core, the accessibility checker that the browser tests inject into each page: from
# npm, into a git-ignored folder (it is JavaScript, not a Python package).
AXE_VERSION := 4.11
AXE := tests/.npm/node_modules/axe-core/axe.min.js

.PHONY: venv run test lint bench bench-quick soak clean

$(RUN_STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $(RUN_STAMP)

$(STAMP): $(RUN_STAMP) clients/python/pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) -m pip install --quiet -e clients/python
	touch $(STAMP)

$(AXE):
	@if command -v npm >/dev/null; then \
	  npm install --silent --no-audit --no-fund --prefix tests/.npm axe-core@$(AXE_VERSION); \
	else echo "npm not found: the browser tests' accessibility checks will be skipped"; fi

venv: $(STAMP)

run: $(RUN_STAMP)
	$(VENV)/bin/pixlive migrate
	$(VENV)/bin/pixlive serve --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests soak bench clients
	$(VENV)/bin/ruff format --check src
	$(VENV)/bin/mypy

test: lint $(AXE)
	@start=$$(date +%s); $(PY) -m pytest -q -p no:cacheprovider; status=$$?; \
	echo "make test: $$(( $$(date +%s) - start )) s (the suite should take under 6 minutes)"; exit $$status

clean:
	rm -rf $(VENV) tests/.npm .pytest_cache .mypy_cache .ruff_cache pixlive.db pixlive.db-wal pixlive.db-shm

# Full benchmark (about 15 min on a quiet machine; what it measures: bench/scenarios.py):
# writes docs/benchmarks.md, docs/benchmarks.json, docs/img/bench-*.png
bench: $(STAMP)
	PIXLIVE_BENCH_COMMAND="make bench" $(PY) -m bench --mode full

# Smaller sizes, shared servers (a few minutes): the same report, marked as quick
bench-quick: $(STAMP)
	PIXLIVE_BENCH_COMMAND="make bench-quick" $(PY) -m bench --mode quick

# Load and churn (not in the default CI run): 5,000 subscribers, 200 webhooks/s for 5 min,
# then 100,000 connect/disconnect cycles; `make test` runs a short version.
soak: $(STAMP)
	$(PY) -m soak.run --json soak-report.json
	FUZZ_EXAMPLES=5000 $(PY) -m pytest -q -p no:cacheprovider tests/unit/test_fuzz_edge.py
