"""The code location: assets, checks, jobs, schedules, sensors and resources."""

import dagster as dg

from fusion_assets.assets.align import build_align_assets
from fusion_assets.assets.batch_evaluation import build_batch_evaluation
from fusion_assets.assets.encoders import build_encoder_asset
from fusion_assets.assets.evaluation import build_evaluation_assets
from fusion_assets.assets.fusion import build_fusion_asset
from fusion_assets.assets.ingest import build_ingest_assets, landing_batches
from fusion_assets.assets.profile import build_profile_assets
from fusion_assets.checks import build_profile_checks, no_strategy_beats_oracle
from fusion_assets.cohorts import CohortSpec, load_cohort_spec
from fusion_assets.jobs import JOBS
from fusion_assets.models.strategies import STRATEGIES
from fusion_assets.schedules import SCHEDULES
from fusion_assets.sensors import SENSORS
from resources import LandingZoneResource, ModelStoreResource, TrackingResource, WarehouseResource

__all__ = ["COHORT", "MODALITIES", "STRATEGIES", "build_definitions", "defs"]


def build_definitions(cohort: CohortSpec) -> dg.Definitions:
    """Every asset, check, job, schedule, sensor and resource for ``cohort``.

    Modality partitions and per-modality assets come from the spec, so a spec
    file (``FUSION_COHORT_SPEC``) or a test can build the code location for any
    cohort in-process.
    """
    encoder = build_encoder_asset(cohort)
    return dg.Definitions(
        assets=[
            build_ingest_assets(cohort),
            *build_align_assets(cohort),
            *build_profile_assets(cohort),
            encoder,
            build_fusion_asset(cohort, encoder),
            *build_evaluation_assets(cohort),
            build_batch_evaluation(cohort, landing_batches),
        ],
        asset_checks=[*build_profile_checks(cohort), no_strategy_beats_oracle],
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


COHORT = load_cohort_spec()
MODALITIES: tuple[str, ...] = tuple(COHORT.modality_names)
defs = build_definitions(COHORT)
