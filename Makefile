# The two commands a newcomer needs: `make sandbox` (run the sync against the bundled emulators)
# and `make test` (the whole suite, exactly what CI runs).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Placeholder values: `dagster definitions validate` must load the code location without a real system.
VALIDATE_ENV := CONFLUENCE_INSTANCE_TYPE=ONPREM CONFLUENCE_URL=https://confluence.invalid CONFLUENCE_PAT=placeholder \
	UNIQUE_INGESTION_URL=https://unique.invalid/ingestion/v1/content \
	UNIQUE_INGESTION_URL_GRAPHQL=https://unique.invalid/ingestion/graphql UNIQUE_SERVICE_AUTH_MODE=cluster_local \
	UNIQUE_SERVICE_EXTRA_HEADERS='{"x-company-id":"c","x-user-id":"u"}'

.PHONY: install sandbox test lint validate postgres ui bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

sandbox: install
	$(BIN)/python -m confluence_sandbox demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

validate: install
	env $(VALIDATE_ENV) DAGSTER_HOME= $(BIN)/dagster definitions validate -m confluence_pipeline.definitions

postgres:
	bash scripts/ensure-postgres.sh

test: install postgres lint validate
	$(BIN)/pytest -n 2 --durations=15

ui: install
	$(BIN)/dagster dev

bench: install
	$(BIN)/python benchmarks/sync_bench.py

clean:
	rm -rf $(VENV) .sandbox .pytest_cache .ruff_cache
