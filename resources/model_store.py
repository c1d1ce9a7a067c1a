"""The model store: a cohort's fitted encoders and fused models, ``<data_dir>/<cohort>/models``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from pydantic import Field

from resources.paths import cohort_dir


@dataclass(frozen=True)
class ModelStore:
    """``<path>/<kind>/<name>/`` holds one fitted model (weights, config, preprocessing).

    The directory layout is the contract with ``fusion_assets.models.api``:
    ``save_model`` writes such a directory and ``load_model`` reads it back.
    """

    path: str

    def model_dir(self, kind: str, name: str) -> Path:
        return Path(self.path) / kind / name.replace(":", "_")

    def exists(self, kind: str, name: str) -> bool:
        return self.model_dir(kind, name).exists()


class ModelStoreResource(dg.ConfigurableResource):
    """Every cohort's model store: ``<data_dir>/<cohort>/models/<kind>/<name>/``."""

    data_dir: str = Field(description="The data folder; each cohort has a sub-folder")

    def for_cohort(self, cohort: str) -> ModelStore:
        return ModelStore(str(cohort_dir(self.data_dir, cohort) / "models"))


class ReportsResource(dg.ConfigurableResource):
    """Every cohort's report folders: ``<data_dir>/<cohort>/reports/<run>/``, ``latest`` the newest."""

    data_dir: str = Field(description="The data folder; each cohort has a sub-folder")

    def for_cohort(self, cohort: str) -> Path:
        return cohort_dir(self.data_dir, cohort) / "reports"
