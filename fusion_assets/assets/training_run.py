"""Shared by the encoder and fusion assets: fit, save, track in MLflow, describe in Dagster."""

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

import dagster as dg
import pandas as pd

from fusion_assets.assets.metadata import frame_table, rounded
from fusion_assets.cohorts import CohortSpec
from fusion_assets.models.config import config_to_dict
from fusion_assets.training_settings import TrainingSettings
from resources import ModelStore, Tracking, Warehouse

# (on_epoch callback) -> (FittedModel, TrainResult); torch is imported only when it runs.
Fit = Callable[[Callable[..., None]], tuple[Any, Any]]


# Transient failures of a fit (the MLflow store busy, a lock held past its timeout, a worker
# killed): two more tries, a minute apart. A user's mistake raises Failure(allow_retries=False).
TRAINING_RETRY = dg.RetryPolicy(max_retries=2, delay=60, backoff=dg.Backoff.EXPONENTIAL)


class TrainingConfig(dg.Config, TrainingSettings):
    """Training knobs exposed in the Dagster launchpad (defaults: the laptop demo)."""


def profile_preset(
    context: dg.AssetExecutionContext,
    config: TrainingSettings,
    warehouse: Warehouse,
    spec: CohortSpec,
) -> str:
    """The preset this run trains with; ``auto`` is resolved from the cohort's profile."""
    if config.preset != "auto":
        return config.preset
    from fusion_assets.models.presets import choose_preset
    from fusion_assets.warehouse.profile import summarize_profile

    with warehouse.connect() as con:
        choice = choose_preset(summarize_profile(con, spec))
    context.log.info(
        f"Preset {choice.name!r} (auto, from the profile): {'; '.join(choice.reasons)}"
    )
    return choice.name


def fit_save_track(
    context: dg.AssetExecutionContext,
    *,
    tracking: Tracking,
    model_store: ModelStore,
    store_kind: str,
    name: str,
    params: dict,
    fit: Fit,
    example: pd.DataFrame | None = None,
) -> dg.MaterializeResult:
    """Run ``fit`` inside an MLflow run; save the model; return the Dagster metadata."""
    import mlflow

    from fusion_assets.models.api import save_model

    started = time.perf_counter()
    with tracking.run(
        name, dagster_run_id=context.run.run_id, tags={"fusion.kind": store_kind}
    ) as run:
        fitted, result = fit(_epoch_logger(context, name))
        directory = save_model(fitted, model_store.model_dir(store_kind, name))
        # Lets the evaluation attach its report to the run that produced this model.
        (directory / "mlflow_run.json").write_text(
            json.dumps({"run_id": run.info.run_id, "experiment_id": run.info.experiment_id})
        )
        mlflow.log_params(_flatten({**params, **config_to_dict(fitted.config)}))
        final = {
            "final_val_auroc": result.val_auroc,
            "final_val_loss": result.val_loss,
            "best_epoch": result.best_epoch,
            "n_parameters": result.n_parameters,
            "train_seconds": result.train_seconds,
        }
        mlflow.log_metrics({k: float(v) for k, v in final.items() if v == v})
        _log_pyfunc(directory, example)
        url, run_id = tracking.run_url(run), run.info.run_id

    context.log.info(
        f"{name}: validation AUROC {result.val_auroc:.3f} after {result.best_epoch} epochs, "
        f"{result.n_parameters:,} parameters, {result.train_seconds:.1f} s; MLflow run {run_id}"
    )
    metadata = _fit_metadata(result, run_id, url, directory)
    metadata["wall_seconds"] = rounded(time.perf_counter() - started, 1)
    return dg.MaterializeResult(data_version=_directory_version(directory), metadata=metadata)


def _epoch_logger(context: dg.AssetExecutionContext, name: str) -> Callable[..., None]:
    """The per-epoch callback: the Dagster log and the active MLflow run."""
    import mlflow

    def on_epoch(epoch: int, train_loss: float, val_loss: float, val_auroc: float) -> None:
        context.log.info(
            f"{name} epoch {epoch}: train loss {train_loss:.4f}, "
            f"validation loss {val_loss:.4f}, validation AUROC {val_auroc:.3f}"
        )
        mlflow.log_metrics(
            {"train_loss": train_loss, "val_loss": val_loss, "val_auroc": val_auroc},
            step=epoch,
        )

    return on_epoch


def _fit_metadata(result: Any, run_id: str, url: str, directory) -> dict[str, Any]:
    return {
        "val_auroc": rounded(result.val_auroc),
        "val_loss": rounded(result.val_loss, 4),
        "best_epoch": dg.MetadataValue.int(int(result.best_epoch)),
        "n_parameters": dg.MetadataValue.int(int(result.n_parameters)),
        "train_seconds": rounded(result.train_seconds, 1),
        "n_train": dg.MetadataValue.int(int(result.n_train)),
        "n_validation": dg.MetadataValue.int(int(result.n_val)),
        "mlflow_run_id": dg.MetadataValue.text(run_id),
        "mlflow_run_url": dg.MetadataValue.url(url),
        "model_dir": dg.MetadataValue.path(str(directory)),
        "history": _history(result),
    }


def _log_pyfunc(directory, example: pd.DataFrame | None) -> None:
    import mlflow.pyfunc

    from fusion_assets import mlflow_pyfunc

    mlflow.pyfunc.log_model(
        name="model",
        python_model=mlflow_pyfunc.__file__,
        artifacts={"model_dir": str(directory)},
        input_example=example,
        # Explicit requirements: inferring them re-imports the world and takes seconds.
        pip_requirements=["fusion_assets", "torch==2.13.0", "pandas", "scikit-learn"],
    )


def _directory_version(directory) -> dg.DataVersion:
    """The saved model's content hash: a refit that changes weights changes the version."""
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        if path.is_file() and path.name != "mlflow_run.json":
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return dg.DataVersion(digest.hexdigest()[:16])


def _flatten(params: dict, prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in params.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = str(value)[:500]
    return flat


def _history(result: Any) -> dg.MetadataValue:
    if not result.history:
        return dg.MetadataValue.text("No epochs (fitted in closed form).")
    return frame_table(pd.DataFrame(result.history), digits=4)
