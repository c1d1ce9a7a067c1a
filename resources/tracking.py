"""The MLflow tracking resource."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from resources.paths import default_path


def _default_tracking_uri() -> str:
    return "sqlite:///" + default_path("mlflow", "mlflow.db")


class TrackingResource(dg.ConfigurableResource):
    """MLflow with a sqlite backend (MLflow 3 refuses a plain file store).

    Runs are grouped per Dagster run: one parent MLflow run named after the
    Dagster run id, one nested run per asset partition.
    """

    tracking_uri: str = Field(default_factory=_default_tracking_uri)
    artifact_root: str = Field(default_factory=lambda: default_path("mlflow", "artifacts"))
    experiment: str = "fusion_assets"
    ui_url: str = "http://127.0.0.1:5000"

    def _experiment_id(self) -> str:
        import mlflow

        if self.tracking_uri.startswith("sqlite:///"):
            Path(self.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(
                parents=True, exist_ok=True
            )
        mlflow.set_tracking_uri(self.tracking_uri)
        experiment = mlflow.get_experiment_by_name(self.experiment)
        if experiment is not None:
            return experiment.experiment_id
        Path(self.artifact_root).mkdir(parents=True, exist_ok=True)
        return mlflow.create_experiment(
            self.experiment, artifact_location=Path(self.artifact_root).as_uri()
        )

    @contextmanager
    def run(self, name: str, tags: dict[str, str] | None = None) -> Iterator[Any]:
        """Start an MLflow run (imported lazily: sensors must not pay for mlflow)."""
        import mlflow

        experiment_id = self._experiment_id()
        with mlflow.start_run(experiment_id=experiment_id, run_name=name, tags=tags) as active:
            yield active

    def run_url(self, run: Any) -> str:
        return f"{self.ui_url}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
