"""The model store: a cohort's fitted models as versions in the MLflow Model Registry.

Every fit is one registered model version named ``<cohort>.<model>`` (``<cohort>.late``,
``<cohort>.single_ehr``): the logged pyfunc model carries the saved model folder
(``fusion_assets.models.api.save_model`` layout) as artifact ``model_dir`` and, in
cross-validation mode, the fold models as artifact ``folds``
(``fusion_assets.evaluation.fold_models`` layout). A version is registered only after
its artifacts are written, and readers load registered versions only, so no reader
ever sees a half-written model. Loaded versions are copied once into
``<data_dir>/<cohort>/models/<registered name>/v<version>/`` (written under a temporary
name, then renamed): versions never change, so the copy is a cache, not a store.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from resources.paths import cohort_dir
from resources.tracking import TrackingResource

CHAMPION = "champion"
MODEL_ARTIFACT = "model_dir"
FOLDS_ARTIFACT = "folds"


def registered_name(cohort: str, name: str) -> str:
    """``<cohort>.<model>``; ``single:ehr`` becomes ``single_ehr`` (URIs split on ':')."""
    return f"{cohort}.{name.replace(':', '_')}"


@dataclass(frozen=True)
class ModelStore:
    """One cohort's registered models, read and written through MLflow.

    ``model_dir(kind, name)`` / ``fold_root(kind, name)`` give the local folder of the
    newest registered version of ``name``; the version is resolved once per store
    object (one asset execution), so every read of one model in a step sees one
    version, and ``versions_used`` says which. ``kind`` (encoders / fusion) is a
    version tag, not part of the name. mlflow is imported lazily: sensors and the
    code location must not pay for it.
    """

    path: str  # the local cache of downloaded versions
    tracking_uri: str
    cohort: str
    _resolved: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def name(self, name: str) -> str:
        return registered_name(self.cohort, name)

    def _client(self) -> Any:
        from mlflow.tracking import MlflowClient

        return MlflowClient(self.tracking_uri, registry_uri=self.tracking_uri)

    def versions(self, name: str) -> list[int]:
        """The READY versions of ``name``, oldest first."""
        from mlflow.exceptions import MlflowException

        try:
            found = self._client().search_model_versions(f"name = '{self.name(name)}'")
        except MlflowException:
            return []
        return sorted(int(v.version) for v in found if v.status == "READY")

    def newest_version(self, name: str) -> int | None:
        """The newest READY version of ``name`` (None: never registered)."""
        ready = self.versions(name)
        return ready[-1] if ready else None

    def version(self, name: str) -> int | None:
        """The version this store object reads for ``name`` (resolved on first use)."""
        if name not in self._resolved:
            found = self.newest_version(name)
            if found is None:
                return None
            self._resolved[name] = found
        return self._resolved[name]

    def pin(self, name: str, version: int) -> None:
        """Read ``version`` of ``name`` from now on (the champion, a rollback target)."""
        self._resolved[name] = int(version)

    @property
    def versions_used(self) -> dict[str, int]:
        return dict(self._resolved)

    def exists(self, kind: str, name: str) -> bool:
        return self.version(name) is not None

    def uri(self, name: str, version: int | None = None) -> str:
        return f"models:/{self.name(name)}/{version or self.version(name)}"

    def local_version(self, name: str, version: int | None = None) -> Path:
        """The downloaded model of ``name`` at ``version`` (default: the resolved one)."""
        version = version or self.version(name)
        if version is None:
            raise FileNotFoundError(
                f"No registered model {self.name(name)!r} in {self.tracking_uri}: "
                "materialize the asset that fits it first."
            )
        target = Path(self.path) / self.name(name) / f"v{version}"
        if target.exists():
            return target
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        staging = target.with_name(f".{target.name}-{uuid.uuid4().hex[:8]}")
        staging.mkdir(parents=True)
        try:
            # Resolved by this store's client: mlflow resolves a models:/ URI in the
            # process's global registry, which may be another data folder's
            source = self._client().get_model_version_download_uri(self.name(name), str(version))
            get_artifact_repository(source, tracking_uri=self.tracking_uri).download_artifacts(
                "", dst_path=str(staging)
            )
            os.rename(staging, target)  # atomic; a concurrent reader may have won the race
        except OSError:
            if not target.exists():
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def version_dir(self, name: str, version: int, artifact: str = MODEL_ARTIFACT) -> Path:
        """One artifact (the model folder, the fold models) of a given version."""
        return self.local_version(name, version) / "artifacts" / artifact

    def model_dir(self, kind: str, name: str) -> Path:
        return self.local_version(name) / "artifacts" / MODEL_ARTIFACT

    def fold_root(self, kind: str, name: str) -> Path:
        """The fold models of the resolved version (a missing folder if it has none)."""
        if self.version(name) is None:
            return Path(self.path) / self.name(name) / "unregistered"
        return self.local_version(name) / "artifacts" / FOLDS_ARTIFACT

    def run_id(self, name: str) -> str | None:
        """The MLflow run that produced the resolved version of ``name``."""
        version = self.version(name)
        if version is None:
            return None
        return self._client().get_model_version(self.name(name), str(version)).run_id

    def version_tags(self, name: str, version: int) -> dict[str, str]:
        return dict(self._client().get_model_version(self.name(name), str(version)).tags)

    def tag_version(self, name: str, version: int, tags: dict[str, str]) -> None:
        client = self._client()
        for key, value in tags.items():
            client.set_model_version_tag(self.name(name), str(version), key, value)

    def champion(self) -> tuple[str, int] | None:
        """(model, version) holding alias ``champion`` in this cohort, if any."""
        client = self._client()
        prefix = f"{self.cohort}."
        for model in client.search_registered_models(f"name LIKE '{prefix}%'"):
            version = (model.aliases or {}).get(CHAMPION)
            if version is not None:
                return model.name[len(prefix) :], int(version)
        return None

    def set_champion(self, name: str, version: int) -> tuple[str, int] | None:
        """Move alias ``champion`` to ``name`` v``version``; returns the previous holder."""
        client = self._client()
        previous = self.champion()
        client.set_registered_model_alias(self.name(name), CHAMPION, str(version))
        if previous is not None and previous[0] != name:
            client.delete_registered_model_alias(self.name(previous[0]), CHAMPION)
        return previous


class ModelStoreResource(dg.ConfigurableResource):
    """Every cohort's registered models (the MLflow registry of ``tracking``)."""

    data_dir: str = Field(description="The data folder; each cohort caches loaded versions there")
    tracking_uri: str | None = Field(
        default=None, description="The MLflow store (default: the tracking resource's default)"
    )

    def for_cohort(self, cohort: str) -> ModelStore:
        # The tracking resource's URI rule, so runs and registered models share one store.
        tracking = TrackingResource(data_dir=self.data_dir, tracking_uri=self.tracking_uri)
        located = tracking.for_cohort(cohort)
        located.locate()  # a copied data folder reads and writes its own artifacts
        return ModelStore(
            path=str(cohort_dir(self.data_dir, cohort) / "models"),
            tracking_uri=located.tracking_uri,
            cohort=cohort,
        )


class ReportsResource(dg.ConfigurableResource):
    """Every cohort's report folders: ``<data_dir>/<cohort>/reports/<run>/``, ``latest`` the newest."""

    data_dir: str = Field(description="The data folder; each cohort has a sub-folder")

    def for_cohort(self, cohort: str) -> Path:
        return cohort_dir(self.data_dir, cohort) / "reports"
