"""Dagster resources of fusion_assets: warehouse, tracking, landing zone, model store, reports.

Each resource holds the data folder and settings for every cohort; ``for_cohort``
gives the plain object of one cohort (its DuckDB file, landing folder, model
store, MLflow experiment), so cohorts served side by side never share a file.
"""

from resources.landing import LandingZone, LandingZoneResource
from resources.model_store import ModelStore, ModelStoreResource, ReportsResource
from resources.tracking import Tracking, TrackingResource
from resources.warehouse import Warehouse, WarehouseResource

__all__ = [
    "LandingZone",
    "LandingZoneResource",
    "ModelStore",
    "ModelStoreResource",
    "ReportsResource",
    "Tracking",
    "TrackingResource",
    "Warehouse",
    "WarehouseResource",
]
