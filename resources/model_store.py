"""The model store resource: fitted encoders and fused models on disk."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from resources.paths import default_path


class ModelStoreResource(dg.ConfigurableResource):
    """``<path>/<kind>/<name>/`` holds one fitted model (weights, config, preprocessing).

    The directory layout is the contract with ``fusion_assets.models.api``:
    ``save_model`` writes such a directory and ``load_model`` reads it back.
    """

    path: str = Field(default_factory=lambda: default_path("models"))

    def model_dir(self, kind: str, name: str) -> Path:
        return Path(self.path) / kind / name.replace(":", "_")

    def exists(self, kind: str, name: str) -> bool:
        return self.model_dir(kind, name).exists()
