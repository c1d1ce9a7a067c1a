"""The code location: assets, checks, jobs, schedules, sensors and resources."""

import dagster as dg

from fusion_assets.assets.align import build_align_assets
from fusion_assets.assets.encoders import build_encoder_asset
from fusion_assets.assets.evaluation import build_evaluation_assets
from fusion_assets.assets.fusion import STRATEGIES, build_fusion_asset
from fusion_assets.assets.ingest import build_ingest_assets
from fusion_assets.assets.profile import build_profile_assets
from fusion_assets.checks import build_profile_checks, no_strategy_beats_oracle
from fusion_assets.cohorts import load_cohort_spec
from fusion_assets.jobs import JOBS
from fusion_assets.schedules import SCHEDULES
from fusion_assets.sensors import SENSORS
from resources import LandingZoneResource, ModelStoreResource, TrackingResource, WarehouseResource

COHORT = load_cohort_spec()
MODALITIES: tuple[str, ...] = tuple(COHORT.modality_names)
__all__ = ["COHORT", "MODALITIES", "STRATEGIES", "defs"]

_encoder = build_encoder_asset(COHORT)

defs = dg.Definitions(
    assets=[
        build_ingest_assets(COHORT),
        *build_align_assets(COHORT),
        *build_profile_assets(COHORT),
        _encoder,
        build_fusion_asset(COHORT, _encoder),
        *build_evaluation_assets(COHORT),
    ],
    asset_checks=[*build_profile_checks(COHORT), no_strategy_beats_oracle],
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
