"""Dagster resources of fusion_assets: warehouse, tracking, landing zone, model store."""

from resources.landing import LandingZoneResource
from resources.model_store import ModelStoreResource
from resources.tracking import TrackingResource
from resources.warehouse import WarehouseResource

__all__ = ["LandingZoneResource", "ModelStoreResource", "TrackingResource", "WarehouseResource"]
