# Two commands from a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)
export FUSION_DATA_DIR ?= $(CURDIR)/data
# The MLflow UI's port; run links in Dagster metadata follow FUSION_MLFLOW_URL
MLFLOW_PORT ?= 5000
export FUSION_MLFLOW_URL ?= http://127.0.0.1:$(MLFLOW_PORT)

.PHONY: demo demo-fast example test install dev-install browser postgres lint ui dg-dev mlflow-ui bench study clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch is pinned to the CPU build: an unpinned torch pulls several GB of CUDA packages.
install: $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e .

dev-install: install
	$(BIN)/pip install --quiet -e ".[dev]"

## Materialize every asset on the synthetic default cohort (data lands in ./data/synthetic).
demo: install
	$(BIN)/fusion-assets demo

## The same with tiny networks and fewer resamples: a smoke run of about a minute.
demo-fast: install
	$(BIN)/fusion-assets demo --fast

## The pipeline on a real cohort: scikit-survival's breast cancer data (198 patients, shipped in
## examples/breast_cancer). It is a cohort of the code location: data land in data/breast_cancer,
## and `make ui` shows its runs and assets beside the synthetic cohort's.
example: install
	$(BIN)/fusion-assets run --spec examples/breast_cancer/cohort.yaml

# The UI test drives Debian's chromium through the playwright package (dev extra).
# Never `playwright install`: it downloads a browser build, which fails here.
# CI runs as root; elsewhere a failed install only makes the UI test skip.
browser:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
		|| echo "chromium not installed: tests/test_ui_browser.py will be skipped"

# The production end-to-end test starts a throwaway PostgreSQL server (Debian's postgresql:
# initdb, pg_ctl); the same way as chromium, a failed install only makes that test skip.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) \
		|| echo "postgresql not installed: tests/test_e2e_postgres.py will be skipped"

## Run the whole test suite (slow end-to-end tests included; `dg check defs` is one of them).
test: dev-install browser postgres
	$(BIN)/python -m pytest

lint: dev-install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## The Dagster UI on the local instance (dagster.yaml in this folder): every cohort of
## fusion_assets/defs/ in one code location.
ui: install
	$(BIN)/dagster dev -w workspace.yaml

## The same through the dg CLI (dev extra): the project's [tool.dg] settings.
dg-dev: dev-install
	$(BIN)/dg dev

mlflow-ui: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(FUSION_DATA_DIR)/mlflow/mlflow.db --port $(MLFLOW_PORT)

bench: install
	$(BIN)/python benchmarks/synth.py
	$(BIN)/python benchmarks/warehouse.py
	$(BIN)/python benchmarks/training.py
	$(BIN)/python benchmarks/evaluation.py

# The decision-matrix study (about 1.5 h on 2 cores; resumable: run it again after a stop).
study: install
	$(BIN)/python benchmarks/study.py

clean:
	rm -rf data
