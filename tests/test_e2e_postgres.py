"""The production setup, run: deploy/dagster.yaml on a real PostgreSQL server, through the daemon.

A throwaway PostgreSQL cluster (tests/postgres_server.py) holds the Dagster
instance (runs, event log, sensor state: ``deploy/dagster.yaml`` as shipped)
and MLflow's backend store. ``dagster dev`` serves the production code location
(``fusion_assets.deploy``: multiprocess executor, MLflow at MLFLOW_TRACKING_URI)
for the synthetic cohort with tiny run-config defaults. A landed batch is
ingested and re-evaluated by the sensors, the retraining sensor is turned on and
its cron tick retrains everything, two training partitions at a time (the
queue's limit), and the report's subgroup metrics must equal those of the same
pipeline run in process on the same batch (laptop settings, sqlite).

Skipped only where PostgreSQL's server binaries are missing (``make test``
installs Debian's ``postgresql``).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from fusion_assets.models.strategies import STRATEGIES
from tests.fixtures.dagster_dev import (
    REPO,
    TINY_DEFAULTS,
    DaemonSession,
    e2e_spec,
    land,
    wait_for_runs,
)
from tests.fixtures.postgres_server import postgres_bin, postgres_server

pytestmark = pytest.mark.slow

BATCH = {"batch_id": "first", "n_patients": 300, "seed": 1}
METRICS = ["n", "events", "auroc", "auprc", "brier", "auroc_ci_low", "auroc_ci_high"]


def _deploy_instance(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")


@pytest.fixture(scope="module")
def postgres():
    if postgres_bin() is None:
        pytest.skip("PostgreSQL server binaries not found (make test installs Debian's postgresql)")
    pytest.importorskip("dagster_postgres", reason="the deploy extra (dagster-postgres)")
    with postgres_server(("dagster", "mlflow")) as server:
        yield server


def _subgroup_metrics(warehouse: Path) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        table = con.execute("SELECT * FROM eval.subgroup_metrics").df()
    keys = ["strategy", "subgroup_type", "subgroup"]
    return table[keys + [c for c in METRICS if c in table]].sort_values(keys).reset_index(drop=True)


def _in_process_reference(root: Path) -> pd.DataFrame:
    """The same batch and settings, materialized in process with the laptop's location."""
    from fusion_assets.cohorts.synthetic import synthesize_batch
    from fusion_assets.location import Cohort
    from tests.fixtures.pipeline import cohort_stores, run_cohort

    cohort = Cohort("synthetic", e2e_spec(), config_defaults=TINY_DEFAULTS)
    landing = cohort_stores(root, cohort)["landing"].root
    synthesize_batch(landing, **BATCH)
    _, results = run_cohort(root, cohort, [BATCH["batch_id"]])
    assert all(r.success for r in results)
    return _subgroup_metrics(root / "synthetic" / "warehouse.duckdb")


def test_the_production_setup_runs_the_pipeline_through_the_daemon(
    postgres, tmp_path_factory, monkeypatch
):
    env = {**postgres.dagster_env("dagster"), "MLFLOW_TRACKING_URI": postgres.url("mlflow")}
    for name, value in env.items():  # this process reads the instance too
        monkeypatch.setenv(name, value)
    root = tmp_path_factory.mktemp("postgres")
    t0 = time.time()
    with DaemonSession.start(root, _deploy_instance, deploy=True, env=env) as session:
        assert type(session.instance.run_storage).__name__ == "PostgresRunStorage"
        land(session, BATCH["batch_id"], n_patients=BATCH["n_patients"], seed=BATCH["seed"])
        wait_for_runs(session, "synthetic_ingest", [BATCH["batch_id"]])
        wait_for_runs(session, "synthetic_reevaluate_batch", [BATCH["batch_id"]])
        session.retrain_and_wait()
        session.assert_retrained_by_the_daemon()
        print(f"\n[postgres] landed → retrained through the daemon in {time.time() - t0:.0f} s")
        daemon = _subgroup_metrics(session.cohort_dir / "warehouse.duckdb")

    t1 = time.time()
    reference = _in_process_reference(tmp_path_factory.mktemp("in_process"))
    print(f"[postgres] the same pipeline in process: {time.time() - t1:.0f} s")
    pd.testing.assert_frame_equal(daemon, reference)

    from mlflow.tracking import MlflowClient

    client = MlflowClient(postgres.url("mlflow"))
    experiment = client.get_experiment_by_name("fusion_assets/synthetic")
    fits = client.search_runs([experiment.experiment_id], "tags.`fusion.kind` = 'fusion'")
    assert {r.info.run_name for r in fits} == set(STRATEGIES)
