"""A real pipeline on a tiny synthetic cohort, in a temporary data folder.

Real DuckDB file, real MLflow sqlite store, real Dagster materializations on an
ephemeral instance; tiny networks so the whole thing takes about a minute. The
data folder is laid out as the code location's: ``<root>/<cohort>/...``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from fusion_assets.cohorts import CohortSpec, synthetic_spec
from fusion_assets.cohorts.synthetic import synthesize_batch
from fusion_assets.demo import FAST_RUN_CONFIG, materialize_cohort
from fusion_assets.location import Cohort
from fusion_assets.location.build import build_location, location_resources

SYNTHETIC = Cohort("synthetic", synthetic_spec())


def temp_resources(root: Path) -> dict[str, Any]:
    """The code location's resources with ``root`` as the data folder."""
    return location_resources(data_dir=str(root))


def cohort_stores(root: Path, cohort: Cohort) -> dict[str, Any]:
    """One cohort's warehouse, landing zone, model store, MLflow experiment and report folder."""
    resources = temp_resources(root)
    return {name: resource.for_cohort(cohort.name) for name, resource in resources.items()}


def run_cohort(
    root: Path,
    cohort: Cohort,
    batches: list[str],
    config: dict | None = None,
    instance: dg.DagsterInstance | None = None,
) -> tuple[dg.Definitions, list[dg.ExecuteInProcessResult]]:
    """Materialize the cohort's whole pipeline on ``batches`` (already in its landing zone)."""
    defs = build_location([cohort], temp_resources(root))
    instance = instance or dg.DagsterInstance.ephemeral()
    return defs, materialize_cohort(defs, cohort, instance, batches, config, log=lambda _: None)


def spec_cohort(spec: CohortSpec) -> Cohort:
    return Cohort(spec.name, spec)


@dataclass
class PipelineRun:
    root: Path
    cohort: Cohort
    defs: dg.Definitions
    instance: dg.DagsterInstance
    results: list[dg.ExecuteInProcessResult] = field(default_factory=list)

    @property
    def stores(self) -> dict[str, Any]:
        return cohort_stores(self.root, self.cohort)

    @property
    def warehouse(self):
        return self.stores["warehouse"]

    @property
    def report_dir(self) -> Path:
        return self.stores["reports"] / "latest"

    def key(self, asset: str) -> dg.AssetKey:
        return self.cohort.key(asset)


def run_tiny_pipeline(root: Path, n_patients: int = 400, seed: int = 3) -> PipelineRun:
    landing = cohort_stores(root, SYNTHETIC)["landing"].root
    synthesize_batch(landing, n_patients=n_patients, seed=seed, batch_id="batch-1")
    config = {
        **FAST_RUN_CONFIG,
        "subgroup_report": {"config": {"n_boot": 200}},
        # 400 patients is under the cross-validation threshold: this run tests the held-out
        # path (tests/test_crossval.py covers cross-validation).
        "splits": {"config": {"small_cohort_size": 0}},
    }
    instance = dg.DagsterInstance.ephemeral()
    defs, results = run_cohort(root, SYNTHETIC, ["batch-1"], config, instance)
    return PipelineRun(root, SYNTHETIC, defs, instance, results)
