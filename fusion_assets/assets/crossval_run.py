"""Shared by the encoder, fusion and evaluation assets in cross-validation mode (small cohorts).

The fold models of ``<store kind>/<name>`` live under ``<store kind>_folds/<name>``
in the model store (layout in ``fusion_assets/crossval_training.py``); the final
model, trained on every patient, stays where the held-out mode puts it, so
deployment and batch re-evaluation never need to know which mode was used.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import dagster as dg
import pandas as pd

from fusion_assets.warehouse.folds import EvaluationMode, read_evaluation_mode
from resources import ModelStoreResource, WarehouseResource

FOLD_SUFFIX = "_folds"


def fold_root(model_store: ModelStoreResource, store_kind: str, name: str) -> Path:
    """Where the fold models (and their out-of-fold predictions) of one model live."""
    return model_store.model_dir(store_kind + FOLD_SUFFIX, name)


def evaluation_mode(warehouse: WarehouseResource) -> EvaluationMode:
    with warehouse.connect() as con:
        return read_evaluation_mode(con)


def train_fold_models(
    context: dg.AssetExecutionContext,
    mode: EvaluationMode,
    root: Path,
    name: str,
    fit,
    frames: Mapping[str, pd.DataFrame],
    labels: pd.Series,
) -> dict[str, dg.MetadataValue]:
    """Run :func:`fusion_assets.crossval_training.train_folds`; return its Dagster metadata."""
    from fusion_assets.crossval_training import train_folds

    settings = mode.settings
    context.log.info(
        f"{name}: training {settings['folds']} folds x {settings['repeats']} repeats "
        f"(cross-validation of a {mode.n_patients}-patient cohort)"
    )
    run = train_folds(
        mode.plan,
        mode.plan_id,
        root,
        fit,
        frames,
        labels,
        log=lambda line: context.log.info(f"{name} {line}"),
    )
    oof_auroc = run.oof_auroc(labels)
    context.log.info(
        f"{name}: {len(run.summary)} fold models in {run.seconds:.1f} s; out-of-fold AUROC "
        f"(repeat-averaged) {oof_auroc:.3f}"
    )
    return {
        "evaluation_mode": dg.MetadataValue.text("cv"),
        "cv_fold_models": dg.MetadataValue.int(len(run.summary)),
        "cv_oof_auroc": dg.MetadataValue.float(float(oof_auroc)),
        "cv_seconds": dg.MetadataValue.float(round(run.seconds, 2)),
        "cv_folds": dg.MetadataValue.md(run.summary.round(3).to_markdown(index=False)),
        "cv_fold_root": dg.MetadataValue.path(str(root)),
        "cv_plan_id": dg.MetadataValue.text(mode.plan_id),
    }


def add_metadata(
    result: dg.MaterializeResult, extra: Mapping[str, dg.MetadataValue]
) -> dg.MaterializeResult:
    """The final model's result with the fold models' metadata and data version added."""
    version = result.data_version
    if version is not None and "cv_plan_id" in extra:
        # Fold models (and so the evaluation) change with the plan even if the final model does not.
        version = dg.DataVersion(f"{version.value}-cv{extra['cv_plan_id'].value}")
    return dg.MaterializeResult(metadata={**(result.metadata or {}), **extra}, data_version=version)
