# The two front-door commands: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck unit serve clean bench bench-postgres-settings

$(BIN)/.installed: pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]' -e clients/python
	touch $@

PORT ?= 8000
demo: $(BIN)/.installed  ## seed ./leads.db with realistic leads, print a key and a curl, serve on PORT
	$(BIN)/leads-api demo --port $(PORT)

serve: $(BIN)/.installed
	$(BIN)/leads-api serve

test: lint typecheck unit  ## everything CI runs

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests bench clients/python
	$(BIN)/lint-imports

typecheck: $(BIN)/.installed
	$(BIN)/mypy

unit: $(BIN)/.installed
	$(BIN)/pytest

# The "fast at a million leads" benchmark on both backends, then bench/RESULTS.md and its
# chart. Needs wrk, pgbench and GNU time (apt-get install -y wrk postgresql-client time)
# and PostgreSQL at 127.0.0.1:5432 (BENCH_PG_URL); it uses its own database, leads_bench.
# At most about 50 minutes on a 2-CPU machine (each run prints the time of each phase).
# The results in bench/RESULTS.md ran on a PostgreSQL server set up by
# bench/postgres-tuning.sql (then a restart): `make bench-postgres-settings` applies it.
BENCH_ROWS ?= 1000000
BENCH_LABEL ?= Fresh questions and the ceiling (issue 13)
bench: $(BIN)/.installed  ## load a million leads, measure the query mix, write bench/RESULTS.md
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m bench run --backend sqlite --rows $(BENCH_ROWS) --label '$(BENCH_LABEL)' --out bench/results/sqlite.json
	$(BIN)/python -m bench run --backend postgres --rows $(BENCH_ROWS) --label '$(BENCH_LABEL)' --workers-curve 1,2,4 --out bench/results/postgres.json
	$(BIN)/python -m bench report

# The benchmark server's settings (README "PostgreSQL settings"); shared_buffers and
# wal_buffers need the restart, which drops every connection to that server.
bench-postgres-settings:
	psql -h 127.0.0.1 -U postgres -f bench/postgres-tuning.sql
	pg_ctlcluster --skip-systemctl-redirect 15 main restart

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
