# The two front-door commands: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck unit serve clean bench

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: $(BIN)/.installed  ## seed ./leads.db with realistic leads, print a key and a curl, serve
	$(BIN)/leads-api demo

serve: $(BIN)/.installed
	$(BIN)/leads-api serve

test: lint typecheck unit  ## everything CI runs

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports

typecheck: $(BIN)/.installed
	$(BIN)/mypy

unit: $(BIN)/.installed
	$(BIN)/pytest

bench: $(BIN)/.installed
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m bench run --backend sqlite --rows 1000000 --out bench/results/sqlite.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
