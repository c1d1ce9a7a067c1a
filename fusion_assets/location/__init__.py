"""The code location: cohorts served side by side (names, definitions, shared resources)."""

from fusion_assets.location.build import (
    build_cohort_definitions,
    build_location,
    cohort_assets,
    location_resources,
)
from fusion_assets.location.cohort import Cohort, SyntheticSource

__all__ = [
    "Cohort",
    "SyntheticSource",
    "build_cohort_definitions",
    "build_location",
    "cohort_assets",
    "location_resources",
]
