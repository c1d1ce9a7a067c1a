"""The resources every cohort of the code location shares (paths under FUSION_DATA_DIR)."""

import dagster as dg

from fusion_assets.location.build import location_resources


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=location_resources())
