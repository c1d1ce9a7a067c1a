"""Definitions of one cohort, and of a code location serving several side by side."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import dagster as dg

from fusion_assets.assets.align import build_align_assets
from fusion_assets.assets.batch_evaluation import build_batch_evaluation
from fusion_assets.assets.encoders import build_encoder_asset
from fusion_assets.assets.evaluation import build_evaluation_assets
from fusion_assets.assets.fusion import build_fusion_asset
from fusion_assets.assets.ingest import build_ingest_assets
from fusion_assets.assets.profile import build_profile_assets
from fusion_assets.assets.promotion import build_promotion_asset
from fusion_assets.assets.risk_scores import build_risk_scores
from fusion_assets.automation import retraining_sensor
from fusion_assets.checks import build_checks
from fusion_assets.jobs import build_jobs
from fusion_assets.location.cohort import Cohort
from fusion_assets.sensors import build_landing_sensor, build_reevaluation_sensor
from resources import (
    LandingZoneResource,
    ModelStoreResource,
    ReportsResource,
    TrackingResource,
    WarehouseResource,
)
from resources.paths import DATA_DIR_ENV


def cohort_assets(cohort: Cohort) -> list[dg.AssetsDefinition]:
    """Every asset of ``cohort``, keys under its prefix."""
    landing = dg.DynamicPartitionsDefinition(name=cohort.landing_partitions)
    encoder = build_encoder_asset(cohort)
    return [
        build_ingest_assets(cohort, landing),
        *build_align_assets(cohort),
        *build_profile_assets(cohort),
        encoder,
        build_fusion_asset(cohort, encoder),
        *build_evaluation_assets(cohort),
        build_promotion_asset(cohort),
        build_batch_evaluation(cohort, landing),
        build_risk_scores(cohort, landing),
    ]


def build_cohort_definitions(
    cohort: Cohort, executor: dg.ExecutorDefinition = dg.in_process_executor
) -> dg.Definitions:
    """Assets, checks, jobs and sensors of one cohort (no resources: the location's)."""
    jobs = build_jobs(cohort, executor)
    with warnings.catch_warnings():
        # A beta API chosen on purpose; its warning would print on every CLI run.
        warnings.simplefilter("ignore", dg.BetaWarning)
        # Each asset links to the function that computes it (the UI's "source" link).
        assets = dg.with_source_code_references(cohort_assets(cohort))
    return dg.Definitions(
        assets=assets,
        asset_checks=build_checks(cohort),
        jobs=list(jobs.values()),
        sensors=[
            build_landing_sensor(cohort, jobs["ingest"]),
            build_reevaluation_sensor(cohort, jobs["reevaluate_batch"]),
            retraining_sensor(cohort),
        ],
    )


def location_resources(
    data_dir: str | dg.EnvVar | None = None,
    tracking_uri: str | dg.EnvVar | None = None,
) -> dict[str, Any]:
    """The resources every cohort shares; each derives its own paths from the data folder.

    ``data_dir`` defaults to ``dg.EnvVar("FUSION_DATA_DIR")``: read when a run starts,
    shown as an environment variable in the UI's resource view.
    """
    data_dir = dg.EnvVar(DATA_DIR_ENV) if data_dir is None else data_dir
    return {
        "warehouse": WarehouseResource(data_dir=data_dir),
        "landing": LandingZoneResource(data_dir=data_dir),
        # The registry is the tracking store's: one MLflow location for runs and models.
        "model_store": ModelStoreResource(data_dir=data_dir, tracking_uri=tracking_uri),
        "reports": ReportsResource(data_dir=data_dir),
        "tracking": TrackingResource(data_dir=data_dir, tracking_uri=tracking_uri),
    }


def build_location(
    cohorts: Iterable[Cohort],
    resources: Mapping[str, Any] | None = None,
    executor: dg.ExecutorDefinition = dg.in_process_executor,
) -> dg.Definitions:
    """A code location serving ``cohorts`` side by side, with shared resources."""
    cohorts = list(cohorts)
    names = [c.name for c in cohorts]
    if len(set(names)) != len(names):
        raise ValueError(f"Two cohorts share a name: {sorted(names)}")
    return dg.Definitions.merge(
        *(build_cohort_definitions(c, executor) for c in cohorts),
        # The executor of runs outside the named jobs (automation, the UI's Materialize).
        dg.Definitions(resources=dict(resources or location_resources()), executor=executor),
    )
