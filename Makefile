# Two commands from a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)
export FUSION_DATA_DIR ?= $(CURDIR)/data

.PHONY: demo demo-fast example test install dev-install browser lint ui mlflow-ui bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch is pinned to the CPU build: an unpinned torch pulls several GB of CUDA packages.
install: $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e .

dev-install: install
	$(BIN)/pip install --quiet -e ".[dev]"

## Materialize every asset on the synthetic default cohort (data lands in ./data).
demo: install
	$(BIN)/fusion-assets demo

## The same with tiny networks and fewer resamples: a smoke run of about a minute.
demo-fast: install
	$(BIN)/fusion-assets demo --fast

## The pipeline on a real cohort: scikit-survival's breast cancer data (198 patients, shipped in
## examples/breast_cancer), with its own data folder and Dagster instance under data/breast_cancer.
EXAMPLE_DATA := $(CURDIR)/data/breast_cancer
example: install
	mkdir -p $(EXAMPLE_DATA)/dagster
	FUSION_DATA_DIR=$(EXAMPLE_DATA) DAGSTER_HOME=$(EXAMPLE_DATA)/dagster \
		$(BIN)/fusion-assets run --spec examples/breast_cancer/cohort.yaml

# The UI test drives Debian's chromium through the playwright package (dev extra).
# Never `playwright install`: it downloads a browser build, which fails here.
# CI runs as root; elsewhere a failed install only makes the UI test skip.
browser:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
		|| echo "chromium not installed: tests/test_ui_browser.py will be skipped"

## Run the whole test suite (slow end-to-end tests included).
test: dev-install browser
	$(BIN)/python -m pytest

lint: dev-install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## The Dagster UI on the local instance (dagster.yaml in this folder).
ui: install
	$(BIN)/dagster dev -w workspace.yaml

mlflow-ui: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(FUSION_DATA_DIR)/mlflow/mlflow.db

bench: install
	$(BIN)/python benchmarks/synth.py
	$(BIN)/python benchmarks/warehouse.py
	$(BIN)/python benchmarks/training.py
	$(BIN)/python benchmarks/evaluation.py

clean:
	rm -rf data
