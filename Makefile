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

.PHONY: install lock sandbox test lint validate postgres ui bench clean

install: $(VENV)/.installed

# Exact, hash-checked versions from the lock; the project itself on top, without re-resolving anything.
$(VENV)/.installed: pyproject.toml requirements/dev.lock requirements/image.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

# Regenerate both locks after editing pyproject.toml's dependencies; `make lock LOCK_ARGS=--upgrade` moves
# everything to the newest allowed versions. Resolved for the image's platform (python:3.11-slim, x86_64),
# so CI and the image install the same set; the dev lock is constrained to the image lock, so the tests run
# exactly the versions that ship.
LOCK_ARGS ?=
LOCK_FLAGS := --quiet --python-version 3.11 --python-platform x86_64-unknown-linux-gnu --generate-hashes \
	--custom-compile-command "make lock" $(LOCK_ARGS)

lock:
	test -x $(BIN)/uv || { $(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install --quiet uv; }
	$(BIN)/uv pip compile pyproject.toml --extra server $(LOCK_FLAGS) -o requirements/image.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev -c requirements/image.lock $(LOCK_FLAGS) -o requirements/dev.lock

sandbox: install
	$(BIN)/python -m confluence_sandbox demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The shipped instances file too, with placeholders for the secret variables it names.
VALIDATE_INSTANCES_ENV := CONFLUENCE_INSTANCES_FILE=config/instances.example.yaml ZITADEL_CLIENT_SECRET=placeholder \
	WIKI_DC_PAT=placeholder CLOUD_API_TOKEN=placeholder

validate: install
	env $(VALIDATE_ENV) DAGSTER_HOME= $(BIN)/dagster definitions validate -m confluence_pipeline.definitions
	env $(VALIDATE_INSTANCES_ENV) DAGSTER_HOME= $(BIN)/dagster definitions validate -m confluence_pipeline.definitions

postgres:
	bash scripts/ensure-postgres.sh

test: install postgres lint validate
	$(BIN)/pytest -n 2 --durations=15

ui: install
	$(BIN)/dagster dev

bench: install
	$(BIN)/python -m benchmarks.sync_bench

clean:
	rm -rf $(VENV) .sandbox .pytest_cache .ruff_cache
