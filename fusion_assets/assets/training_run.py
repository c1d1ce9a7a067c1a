"""Shared by the encoder and fusion assets: fit, register in MLflow, describe in Dagster."""

import hashlib
import json
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from fusion_assets.assets.design import with_fold_models
from fusion_assets.assets.metadata import frame_table, rounded
from fusion_assets.cohorts import CohortSpec
from fusion_assets.fit_checks import DESCRIPTIONS, FitCheck
from fusion_assets.models.config import config_to_dict
from fusion_assets.training_settings import FusionTrainingSettings, TrainingSettings
from resources import ModelStore, Tracking, Warehouse
from resources.model_store import FOLDS_ARTIFACT, MODEL_ARTIFACT

# (on_epoch callback) -> (FittedModel, TrainResult); torch is imported only when it runs.
Fit = Callable[[Callable[..., None]], tuple[Any, Any]]
# (folder) -> the fold models' Dagster metadata ({} when the design has none); written there.
FitFolds = Callable[[Path], Mapping[str, dg.MetadataValue]]
# (TrainResult) -> the fit checks' outcomes (fusion_assets/fit_checks.py)
CheckFit = Callable[[Any], list[FitCheck]]
FIT_CHECK_TAG = "fusion.fit_checks"


# Transient failures of a fit (the MLflow store busy, a lock held past its timeout, a worker
# killed): two more tries, a minute apart. A user's mistake raises Failure(allow_retries=False).
TRAINING_RETRY = dg.RetryPolicy(max_retries=2, delay=60, backoff=dg.Backoff.EXPONENTIAL)


class TrainingConfig(dg.Config, TrainingSettings):
    """Training knobs exposed in the Dagster launchpad (defaults: the laptop demo)."""


class FusionTrainingConfig(dg.Config, FusionTrainingSettings):
    """The fused models' launchpad knobs: training, and the margin of their fit check."""


def fit_check_specs(key: dg.AssetKey, names: tuple[str, ...]) -> list[dg.AssetCheckSpec]:
    """The blocking checks a fit reports on itself (a failed one: no registered version,
    the step fails and its downstream steps are skipped)."""
    return [
        dg.AssetCheckSpec(name, asset=key, blocking=True, description=DESCRIPTIONS[name])
        for name in names
    ]


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
    fit_folds: FitFolds | None = None,
    describe_fit: Callable[[Path], Mapping[str, dg.MetadataValue]] | None = None,
    check_fit: CheckFit | None = None,
) -> dg.MaterializeResult:
    """Run the design's fold models and ``fit`` inside an MLflow run; register the version.

    ``describe_fit(model_folder)`` may write files beside the saved model before it is
    registered and returns metadata.

    The model and its fold models are written to a temporary folder and logged as one
    pyfunc model, registered as the next version of ``<cohort>.<name>``: readers load
    registered versions only, so a half-written model is never read. ``check_fit``'s
    rules (fusion_assets/fit_checks.py) come first: a fit that fails one is not
    registered (its MLflow run is kept, tagged ``fusion.fit_checks = failed`` and marked
    FAILED), and the blocking checks fail the step, so nothing downstream runs on it.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    from fusion_assets.models.api import save_model
    from fusion_assets.models.cost import fit_cost, measure_fit

    started = time.perf_counter()
    with (
        tracking.run(name, context=context, tags={"fusion.kind": store_kind}) as run,
        tempfile.TemporaryDirectory(prefix="fit-") as staging,
    ):
        # Fold models first: the cross-validated deployed refit is trained like them.
        with measure_fit() as fold_cost:
            folds = dict(fit_folds(Path(staging) / FOLDS_ARTIFACT)) if fit_folds else {}
        with measure_fit() as cost:  # the report's cost table (models/cost.py)
            fitted, result = fit(_epoch_logger(context, name))
        fitted.cost = fit_cost(cost, fitted.predictor, result.n_parameters, fold_cost.seconds)
        directory = save_model(fitted, Path(staging) / MODEL_ARTIFACT)
        if describe_fit is not None:  # files beside the model go into the registered version
            folds.update(describe_fit(directory))
        checks = check_fit(result) if check_fit is not None else []
        failed = [c.name for c in checks if not c.passed]
        mlflow.log_params(
            _flatten({**params, "device": result.device, **config_to_dict(fitted.config)})
        )
        mlflow.log_metrics(
            {
                **_final_metrics(result),
                # the report's cost table, also on the fit's run (models/cost.py)
                **{
                    f"fit_{k}": float(v)
                    for k, v in fitted.cost.items()
                    if isinstance(v, int | float) and v == v
                },
            }
        )
        mlflow.set_tags(
            {
                "fusion.fitted_by": result.fitted_by[:5000],
                FIT_CHECK_TAG: "failed" if failed else "passed",
                **({f"{FIT_CHECK_TAG}.failed": ",".join(failed)} if failed else {}),
            }
        )
        version = None
        if not failed:
            version = _register(
                context, tracking, model_store, store_kind, name, Path(staging), example
            )
        data_version = _directory_version(directory)
        url, run_id = tracking.run_url(run), run.info.run_id
    if failed:  # kept for inspection, never a model
        MlflowClient(tracking.tracking_uri).set_terminated(run_id, "FAILED")

    scored = (
        f"validation AUROC {result.val_auroc:.3f}"
        if result.n_val
        else "no validation patients (refitted on every patient)"
    )
    where = (
        f"registered as {model_store.uri(name, version)}"
        if version is not None
        else f"NOT registered: fit checks failed ({', '.join(failed)})"
    )
    context.log.info(
        f"{name}: {scored}; {result.fitted_by}; {result.n_parameters:,} parameters, "
        f"{result.train_seconds:.1f} s on {result.device}; MLflow run {run_id}, {where}"
    )
    metadata = _fit_metadata(result, run_id, url)
    metadata["fit_cost"] = dg.MetadataValue.json(fitted.cost)
    if version is not None:
        metadata["model_uri"] = dg.MetadataValue.text(model_store.uri(name, version))
        metadata["model_version"] = dg.MetadataValue.int(version)
    else:
        metadata["model_uri"] = dg.MetadataValue.text(where)
    metadata["wall_seconds"] = rounded(time.perf_counter() - started, 1)
    return with_fold_models(
        dg.MaterializeResult(
            data_version=data_version,
            metadata=metadata,
            check_results=[_check_result(c) for c in checks],
        ),
        folds,
    )


def _check_result(check: FitCheck) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=check.name,
        passed=check.passed,
        description=check.description,
        metadata={
            k: dg.MetadataValue.json(v) if isinstance(v, dict | list) else v
            for k, v in check.metadata.items()
        },
    )


def _final_metrics(result: Any) -> dict[str, float]:
    """The run's summary: ``val_auroc`` is the registered model's (the best epoch's state,
    restored), ``best_val_auroc`` the best epoch's own (bagged models: of the first seed);
    the per-epoch series are ``epoch_*``."""
    best = result.best_epoch_val_auroc
    final = {
        "val_auroc": result.val_auroc,
        "best_val_auroc": best if best == best else result.val_auroc,
        "val_loss": result.val_loss,
        "best_epoch": result.best_epoch,
        "epochs": len(result.history),
        "n_parameters": result.n_parameters,
        "train_seconds": result.train_seconds,
    }
    return {k: float(v) for k, v in final.items() if v == v}


def _register(
    context: dg.AssetExecutionContext,
    tracking: Tracking,
    store: ModelStore,
    kind: str,
    name: str,
    staging: Path,
    example: pd.DataFrame | None,
) -> int:
    """Log the staged folder as a pyfunc model, register it, tag the version; its number."""
    import mlflow.pyfunc

    from fusion_assets import mlflow_pyfunc, pyfunc_package

    artifacts = {
        key: str(staging / key)
        for key in (MODEL_ARTIFACT, FOLDS_ARTIFACT)
        if (staging / key).exists()
    }
    tags = _version_tags(context, tracking, store, kind)  # before the pin: the models it read
    info = mlflow.pyfunc.log_model(
        name=store.name(name).replace(".", "-"),  # logged-model names refuse dots
        python_model=mlflow_pyfunc.__file__,
        artifacts=artifacts,
        code_paths=pyfunc_package.code_paths(),
        input_example=example,
        pip_requirements=pyfunc_package.pip_requirements(),
        registered_model_name=store.name(name),
    )
    version = int(info.registered_model_version)
    store.tag_version(name, version, tags)
    store.pin(name, version)
    return version


def _version_tags(
    context: dg.AssetExecutionContext, tracking: Tracking, store: ModelStore, kind: str
) -> dict[str, str]:
    """Where a version came from: the Dagster run, asset and partition, the data versions
    of the asset's inputs (newest materialization of each), the models it was built on
    and the code version."""
    from fusion_assets.pyfunc_package import code_version

    inputs = {}
    for key in sorted(context.assets_def.asset_deps[context.asset_key], key=str):
        record = context.instance.get_latest_data_version_record(key)
        if record is not None and record.asset_materialization is not None:
            version = record.asset_materialization.tags.get("dagster/data_version")
            inputs[key.to_user_string()] = version
    return {
        **tracking.tags_of(context),  # dagster.run_id, .run_url, .asset_key, .partition
        "fusion.kind": kind,
        "fusion.code_version": code_version(),
        "fusion.input_data_versions": json.dumps(inputs, sort_keys=True)[:5000],
        "fusion.models_used": json.dumps(store.versions_used, sort_keys=True),
    }


def _epoch_logger(context: dg.AssetExecutionContext, name: str) -> Callable[..., None]:
    """The per-epoch callback: the Dagster log and the active MLflow run (series
    ``epoch_*``: the run's ``val_auroc`` is the kept epoch's, not the last one's)."""
    import mlflow

    def on_epoch(epoch: int, train_loss: float, val_loss: float, val_auroc: float) -> None:
        context.log.info(
            f"{name} epoch {epoch}: train loss {train_loss:.4f}, "
            f"validation loss {val_loss:.4f}, validation AUROC {val_auroc:.3f}"
        )
        mlflow.log_metrics(
            {
                "epoch_train_loss": train_loss,
                "epoch_val_loss": val_loss,
                "epoch_val_auroc": val_auroc,
            },
            step=epoch,
        )

    return on_epoch


def _fit_metadata(result: Any, run_id: str, url: str) -> dict[str, Any]:
    return {
        "val_auroc": rounded(result.val_auroc),
        "val_loss": rounded(result.val_loss, 4),
        "best_epoch": dg.MetadataValue.int(int(result.best_epoch)),
        "n_parameters": dg.MetadataValue.int(int(result.n_parameters)),
        "train_seconds": rounded(result.train_seconds, 1),
        "n_train": dg.MetadataValue.int(int(result.n_train)),
        "n_validation": dg.MetadataValue.int(int(result.n_val)),
        "device": dg.MetadataValue.text(result.device),
        "fitted_by": dg.MetadataValue.text(result.fitted_by),
        "mlflow_run_id": dg.MetadataValue.text(run_id),
        "mlflow_run_url": dg.MetadataValue.url(url),
        "history": _history(result),
    }


def _directory_version(directory) -> dg.DataVersion:
    """The saved model's content hash: a refit that changes weights changes the version."""
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        if path.is_file():
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
        return dg.MetadataValue.text(f"No epochs: {result.fitted_by}.")
    return frame_table(pd.DataFrame(result.history), digits=4)
