"""The code location: assets, checks, jobs, schedules, sensors and resources."""

from __future__ import annotations

import dagster as dg

from fusion_assets.assets.align import build_align_assets
from fusion_assets.assets.ingest import build_ingest_assets
from fusion_assets.cohorts import load_cohort_spec
from fusion_assets.jobs import JOBS
from fusion_assets.schedules import SCHEDULES
from fusion_assets.sensors import SENSORS
from resources import LandingZoneResource, ModelStoreResource, TrackingResource, WarehouseResource

COHORT = load_cohort_spec()
MODALITIES: tuple[str, ...] = tuple(COHORT.modality_names)
STRATEGIES: tuple[str, ...] = ("early", "intermediate", "late", "attention", "reference")

defs = dg.Definitions(
    assets=[build_ingest_assets(COHORT), *build_align_assets(COHORT)],
    jobs=JOBS,
    schedules=SCHEDULES,
    sensors=SENSORS,
    resources={
        "warehouse": WarehouseResource(),
        "landing": LandingZoneResource(),
        "tracking": TrackingResource(),
        "model_store": ModelStoreResource(),
    },
)
