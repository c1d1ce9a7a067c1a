"""A real pipeline on a tiny synthetic cohort, in a temporary data folder.

Real DuckDB file, real MLflow sqlite store, real Dagster materializations on an
ephemeral instance; tiny networks so the whole thing takes about a minute.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from fusion_assets.cohorts.synthetic import synthesize_batch
from fusion_assets.demo import FAST_RUN_CONFIG, materialize_pipeline
from resources import LandingZoneResource, ModelStoreResource, TrackingResource, WarehouseResource


@dataclass
class PipelineRun:
    root: Path
    resources: dict[str, Any]
    instance: dg.DagsterInstance
    results: list[dg.ExecuteInProcessResult] = field(default_factory=list)

    @property
    def warehouse(self) -> WarehouseResource:
        return self.resources["warehouse"]

    @property
    def report_dir(self) -> Path:
        return self.root / "reports" / "latest"


def temp_resources(root: Path) -> dict[str, Any]:
    return {
        "warehouse": WarehouseResource(path=str(root / "warehouse.duckdb")),
        "landing": LandingZoneResource(path=str(root / "landing")),
        "tracking": TrackingResource(
            tracking_uri=f"sqlite:///{root / 'mlflow' / 'mlflow.db'}",
            artifact_root=str(root / "mlflow" / "artifacts"),
        ),
        "model_store": ModelStoreResource(path=str(root / "models")),
    }


def run_tiny_pipeline(root: Path, n_patients: int = 400, seed: int = 3) -> PipelineRun:
    from fusion_assets.definitions import defs

    resources = temp_resources(root)
    synthesize_batch(root / "landing", n_patients=n_patients, seed=seed, batch_id="batch-1")
    run = PipelineRun(root, resources, dg.DagsterInstance.ephemeral())
    config = {
        **FAST_RUN_CONFIG,
        "subgroup_report": {"config": {"n_boot": 200, "report_dir": str(root / "reports")}},
        # 400 patients is under the cross-validation threshold: this run tests the held-out
        # path (tests/test_crossval.py covers cross-validation).
        "splits": {"config": {"small_cohort_size": 0}},
    }
    run.results = materialize_pipeline(
        defs, resources, run.instance, ["batch-1"], config, log=lambda _: None
    )
    return run
