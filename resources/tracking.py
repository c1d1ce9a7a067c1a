"""MLflow tracking: one store for the code location, one experiment per cohort."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import dagster as dg
from pydantic import Field

EXPERIMENT_PREFIX = "fusion_assets"
# MLflow 3 opens an experiment without this tag in GenAI mode (models listed as "Agent
# versions"); the UI's value for classic model training (mlflow/server/js: ExperimentKind)
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_DEVELOPMENT = "custom_model_development"
# The one set of keys tying an MLflow run (and a registered version) to Dagster
RUN_ID_TAG = "dagster.run_id"
RUN_URL_TAG = "dagster.run_url"
ASSET_KEY_TAG = "dagster.asset_key"
PARTITION_TAG = "dagster.partition"
# Links shown in Dagster metadata and MLflow tags; override per deployment
MLFLOW_URL_ENV = "FUSION_MLFLOW_URL"
DAGSTER_URL_ENV = "FUSION_DAGSTER_URL"
DEFAULT_MLFLOW_URL = "http://127.0.0.1:5000"
DEFAULT_DAGSTER_URL = "http://127.0.0.1:3000"


def dagster_tags(
    run_id: str, dagster_url: str, asset_key: str | None = None, partition: str | None = None
) -> dict[str, str]:
    """The Dagster run id, its UI link, and the asset key and partition where there is one."""
    tags = {RUN_ID_TAG: run_id, RUN_URL_TAG: f"{dagster_url.rstrip('/')}/runs/{run_id}"}
    if asset_key:
        tags[ASSET_KEY_TAG] = asset_key
    if partition:
        tags[PARTITION_TAG] = partition
    return tags


def context_tags(context: Any, dagster_url: str) -> dict[str, str]:
    """``dagster_tags`` of an asset execution context (one asset; a multi-asset gives none)."""
    asset_key = None
    if getattr(context, "has_assets_def", False) and len(context.assets_def.keys) == 1:
        asset_key = context.asset_key.to_user_string()
    partition = context.partition_key if context.has_partition_key else None
    return dagster_tags(context.run.run_id, dagster_url, asset_key, partition)


# -------------------------------------------------------------------- relocatable store

_LOCATED: set[str] = set()  # stores already checked by this process


def relocate_store(mlflow_dir: Path) -> int:
    """Point a copied or moved data folder's MLflow store at its own artifacts.

    MLflow records absolute artifact locations (experiments, runs, logged models, model
    versions): a data folder copied elsewhere would keep reading and writing the old
    folder's artifacts. The experiments of this location are created with
    ``<data>/mlflow/artifacts`` as their root, so a root that is not this folder's is an
    old location: every string of the sqlite store that holds it is rewritten to this
    folder's, in one transaction. Returns the number of rows rewritten (0: in place).
    Only for the default store (sqlite and artifacts inside the data folder).
    """
    db, root = mlflow_dir / "mlflow.db", (mlflow_dir / "artifacts").resolve()
    if str(db) in _LOCATED or not db.exists():
        return 0
    with closing(sqlite3.connect(db, timeout=60)) as con:
        try:
            found = con.execute(
                "SELECT DISTINCT artifact_location FROM experiments WHERE name LIKE ?",
                (f"{EXPERIMENT_PREFIX}/%",),
            ).fetchall()
        except sqlite3.OperationalError:  # no tables yet: MLflow creates them
            return 0
        old_roots = {_local_path(location) for (location,) in found} - {str(root), None}
        changed = 0
        if old_roots:
            con.execute("BEGIN IMMEDIATE")
            for old in sorted(old_roots, key=len, reverse=True):
                changed += _rewrite(con, old, str(root))
                if quote(old) != old:  # file:// URIs keep the path percent-encoded
                    changed += _rewrite(con, quote(old), quote(str(root)))
            con.commit()
    _LOCATED.add(str(db))
    return changed


def _local_path(location: str) -> str | None:
    if location.startswith("file://"):
        return unquote(location.removeprefix("file://"))
    return location if location.startswith("/") else None


def _rewrite(con: sqlite3.Connection, old: str, new: str) -> int:
    """Replace ``old`` (a folder) by ``new`` in every text column of every table."""
    changed = 0
    tables = [t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for table in tables:
        for column in con.execute(f'PRAGMA table_info("{table}")').fetchall():
            name, kind = column[1], (column[2] or "").upper()
            if not any(t in kind for t in ("CHAR", "TEXT", "CLOB")):
                continue
            cursor = con.execute(
                f'UPDATE "{table}" SET "{name}" = replace("{name}", ?, ?) '
                f'WHERE instr("{name}", ?) > 0',
                (old, new, old),
            )
            changed += cursor.rowcount
    return changed


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
    ui_url: str = DEFAULT_MLFLOW_URL
    dagster_url: str = DEFAULT_DAGSTER_URL
    # the default store (sqlite and artifacts in the data folder): relocated when copied
    relocatable: bool = False

    def locate(self) -> None:
        """Rewrite a copied data folder's store to point at its own artifacts (once)."""
        if self.relocatable:
            relocate_store(Path(self.artifact_root).parent)

    def _experiment_id(self) -> str:
        import mlflow
        from mlflow.tracking import MlflowClient

        if self.tracking_uri.startswith("sqlite:///"):
            Path(self.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(
                parents=True, exist_ok=True
            )
        self.locate()
        mlflow.set_tracking_uri(self.tracking_uri)
        experiment = mlflow.get_experiment_by_name(self.experiment)
        if experiment is None:
            Path(self.artifact_root).mkdir(parents=True, exist_ok=True)
            return mlflow.create_experiment(
                self.experiment,
                artifact_location=Path(self.artifact_root).as_uri(),
                tags={EXPERIMENT_KIND_TAG: MODEL_DEVELOPMENT},
            )
        if experiment.tags.get(EXPERIMENT_KIND_TAG) != MODEL_DEVELOPMENT:  # made before the tag
            MlflowClient(self.tracking_uri).set_experiment_tag(
                experiment.experiment_id, EXPERIMENT_KIND_TAG, MODEL_DEVELOPMENT
            )
        return experiment.experiment_id

    def tags_of(self, context: Any) -> dict[str, str]:
        """The Dagster tags (run id, run URL, asset key, partition) of an execution context."""
        return context_tags(context, self.dagster_url)

    @contextmanager
    def run(
        self,
        name: str,
        dagster_run_id: str | None = None,
        tags: dict[str, str] | None = None,
        context: Any = None,
    ) -> Iterator[Any]:
        """Start an MLflow run, nested under one parent run per Dagster run.

        ``context`` (an asset execution context) tags the run with the Dagster run id,
        its URL, the asset key and the partition; ``dagster_run_id`` alone gives the first
        two. A caller's ``dagster_run_id`` tag is taken as the run id (one key:
        ``dagster.run_id``).
        """
        import mlflow

        experiment_id = self._experiment_id()
        tags = dict(tags or {})
        dagster_run_id = tags.pop("dagster_run_id", None) or dagster_run_id
        if context is not None:
            tags.update(self.tags_of(context))
        elif dagster_run_id:
            tags.update(dagster_tags(dagster_run_id, self.dagster_url))
        if RUN_ID_TAG in tags:
            tags["mlflow.parentRunId"] = self._parent_run(experiment_id, tags[RUN_ID_TAG])
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
            tags={
                "dagster.parent_of": dagster_run_id,
                **dagster_tags(dagster_run_id, self.dagster_url),
            },
        )
        client.set_terminated(parent.info.run_id)
        return parent.info.run_id

    def run_url(self, run: Any) -> str:
        return f"{self.ui_url.rstrip('/')}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"


class TrackingResource(dg.ConfigurableResource):
    """MLflow for every cohort: experiment ``fusion_assets/<cohort>``.

    Without ``tracking_uri`` the store is sqlite under the data folder (MLflow 3
    refuses a plain file store); a deployment points it at a database
    (``postgresql://…``, see deploy/) or an MLflow server. That default store is
    relocatable: a copied data folder is rewritten to its own artifacts on first use.
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
    ui_url: str | None = Field(
        default=None,
        description=f"MLflow UI for run links; default ${MLFLOW_URL_ENV} or {DEFAULT_MLFLOW_URL}",
    )
    dagster_url: str | None = Field(
        default=None,
        description=(
            f"Dagster UI for the run links tagged on MLflow runs; default ${DAGSTER_URL_ENV} "
            f"or {DEFAULT_DAGSTER_URL}"
        ),
    )

    def for_cohort(self, cohort: str) -> Tracking:
        mlflow_dir = Path(self.data_dir).resolve() / "mlflow"
        return Tracking(
            tracking_uri=self.tracking_uri or f"sqlite:///{mlflow_dir / 'mlflow.db'}",
            artifact_root=self.artifact_root or str(mlflow_dir / "artifacts"),
            experiment=f"{EXPERIMENT_PREFIX}/{cohort}",
            ui_url=self.ui_url or os.environ.get(MLFLOW_URL_ENV) or DEFAULT_MLFLOW_URL,
            dagster_url=self.dagster_url or os.environ.get(DAGSTER_URL_ENV) or DEFAULT_DAGSTER_URL,
            relocatable=self.tracking_uri is None and self.artifact_root is None,
        )
