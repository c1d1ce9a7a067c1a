"""MLflow tracking: one store for the code location, one experiment per cohort."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

EXPERIMENT_PREFIX = "fusion_assets"


@dataclass(frozen=True)
class Tracking:
    """One cohort's MLflow experiment.

    Runs are grouped per Dagster run: one parent MLflow run named after the
    Dagster run id, one nested run per asset partition. mlflow is imported
    lazily: sensors and light processes must not pay for it.
    """

    tracking_uri: str
    artifact_root: str
    experiment: str
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
    def run(
        self, name: str, dagster_run_id: str | None = None, tags: dict[str, str] | None = None
    ) -> Iterator[Any]:
        """Start an MLflow run, nested under one parent run per Dagster run."""
        import mlflow

        experiment_id = self._experiment_id()
        tags = dict(tags or {})
        if dagster_run_id:
            tags["dagster.run_id"] = dagster_run_id
            tags["mlflow.parentRunId"] = self._parent_run(experiment_id, dagster_run_id)
        with mlflow.start_run(experiment_id=experiment_id, run_name=name, tags=tags) as active:
            yield active

    def _parent_run(self, experiment_id: str, dagster_run_id: str) -> str:
        """The run grouping every fit of one Dagster run (created on first use)."""
        from mlflow.tracking import MlflowClient

        client = MlflowClient(self.tracking_uri)
        found = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`dagster.parent_of` = '{dagster_run_id}'",
            max_results=1,
        )
        if found:
            return found[0].info.run_id
        parent = client.create_run(
            experiment_id,
            run_name=f"dagster-{dagster_run_id[:8]}",
            tags={"dagster.parent_of": dagster_run_id, "dagster.run_id": dagster_run_id},
        )
        client.set_terminated(parent.info.run_id)
        return parent.info.run_id

    def run_url(self, run: Any) -> str:
        return f"{self.ui_url}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"


class TrackingResource(dg.ConfigurableResource):
    """MLflow for every cohort: experiment ``fusion_assets/<cohort>``.

    Without ``tracking_uri`` the store is sqlite under the data folder (MLflow 3
    refuses a plain file store); a deployment points it at a database
    (``postgresql://…``, see deploy/) or an MLflow server.
    """

    data_dir: str = Field(description="The data folder (sqlite store and artifacts by default)")
    tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking URI; default sqlite:///<data_dir>/mlflow/mlflow.db",
    )
    artifact_root: str | None = Field(
        default=None,
        description="Where new experiments keep artifacts; default <data_dir>/mlflow/artifacts",
    )
    ui_url: str = Field(default="http://127.0.0.1:5000", description="MLflow UI, for run links")

    def for_cohort(self, cohort: str) -> Tracking:
        mlflow_dir = Path(self.data_dir).resolve() / "mlflow"
        return Tracking(
            tracking_uri=self.tracking_uri or f"sqlite:///{mlflow_dir / 'mlflow.db'}",
            artifact_root=self.artifact_root or str(mlflow_dir / "artifacts"),
            experiment=f"{EXPERIMENT_PREFIX}/{cohort}",
            ui_url=self.ui_url,
        )
