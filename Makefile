# The single command surface: the README's commands and CI call these targets.
# `make help` lists them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install hubsync with its dev tools

# `capture install`: SQL edits typed into ./hubsync.db reach the sandbox (README, change capture).
run: $(STAMP) ## run hubsync on its embedded default (SQLite + HubSpot sandbox) on :8000
	HUBSYNC_MODE=demo $(BIN)/hubsync migrate
	HUBSYNC_MODE=demo $(BIN)/hubsync capture install
	HUBSYNC_MODE=demo $(BIN)/hubsync serve --host 127.0.0.1 --port 8000

# xdist workers: one per core (override with make test JOBS=n); a file stays on one worker, since
# some files check what their own earlier tests gathered (the fuzzing counts).
JOBS ?= auto

test: $(STAMP) ## the fast run: unit and integration tests, on SQLite and PostgreSQL, in parallel
	$(BIN)/pytest -n $(JOBS) --dist loadfile -m "not slow" tests/unit tests/integration $(PYTEST_ARGS)

test-all: test ## everything: the fast run, then (one at a time: real processes and timings) the slow, acceptance, system, browser, chaos and benchmark-smoke suites
	$(BIN)/pytest -m slow tests/unit tests/integration $(PYTEST_ARGS)
	$(BIN)/pytest tests/acceptance tests/browser tests/chaos $(wildcard tests/system) $(PYTEST_ARGS)

lint: $(STAMP) ## ruff, mypy (strict) on app/, the import contracts (the layers), squawk on the migrations' SQL
	$(BIN)/ruff check app tests bench
	$(BIN)/ruff format --check app tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(MAKE) --no-print-directory lint-migrations

# The SQL every migration runs on PostgreSQL, from an empty database (offline: no server needed;
# the URL only picks the dialect), checked by squawk. The rules it leaves out say why: .squawk.toml.
lint-migrations: $(STAMP) ## squawk on the SQL of every migration (PostgreSQL dialect)
	HUBSYNC_DATABASE_URL=postgresql+asyncpg://lint@localhost/lint \
		$(BIN)/hubsync migrate --sql --from base > $(VENV)/migrations.sql
	$(BIN)/squawk --config .squawk.toml $(VENV)/migrations.sql

chaos: $(STAMP) ## the convergence suite, longer: 10 min of edits, 100 customers (CHAOS_SEED=n to replay)
	CHAOS_SECONDS=$${CHAOS_SECONDS:-600} CHAOS_CUSTOMERS=$${CHAOS_CUSTOMERS:-100} \
		$(BIN)/pytest tests/chaos -s

bench: $(STAMP) ## run the benchmarks in bench/ on PostgreSQL (~30 min; see bench/README.md)
	$(BIN)/python -m bench.outbound
	$(BIN)/python -m bench.webhook_intake --runs 5
	$(BIN)/python -m bench.intake_floor --rounds 3
	$(BIN)/python -m bench.inbound_latency --runs 3
	$(BIN)/python -m bench.console --rounds 5
	$(BIN)/python -m bench.reconcile --runs 3
	$(BIN)/python -m bench.capture_cost
	$(BIN)/python -m bench.preview --rounds 3
	$(BIN)/python -m bench.event_close
	$(BIN)/python -m bench.backlog_drain
	$(BIN)/python -m bench.catchup_read

clean: ## remove the virtual environment and local databases
	rm -rf $(VENV) hubsync.db hubsync.db-wal hubsync.db-shm hubsync.db.env .pytest_cache .mypy_cache .ruff_cache

.PHONY: help install run test test-all lint lint-migrations chaos bench clean
