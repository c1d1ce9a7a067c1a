"""The evaluation design as the encoder, fusion and evaluation assets use it.

The design (``fusion_assets.evaluation``) decides which fold models exist and
how predictions are assembled; these helpers only read it from the warehouse
and describe what it did in Dagster metadata. The fold models are logged in the
same registered version as the deployed model, so deployment and batch
re-evaluation never need to know the design.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pandas as pd

from fusion_assets.assets.metadata import frame_table, rounded
from fusion_assets.evaluation import EvaluationDesign, ModelsNotReady
from fusion_assets.evaluation.design import FoldFit
from fusion_assets.warehouse.folds import read_evaluation_design
from resources import Warehouse

# The design's tables: every asset that reads the design depends on them.
DESIGN_ASSETS = ("splits", "folds", "evaluation_mode")


def read_design(warehouse: Warehouse) -> EvaluationDesign:
    with warehouse.connect() as con:
        return read_evaluation_design(con)


@contextmanager
def models_ready(suffix: str = ""):
    """Missing or stale models (a user's order of materializations) fail with the reason."""
    try:
        yield
    except ModelsNotReady as exc:
        # A user's order of materializations, not a transient failure: no retry.
        raise dg.Failure(f"{exc}{suffix}", allow_retries=False) from exc


def fit_fold_models(
    context: dg.AssetExecutionContext,
    design: EvaluationDesign,
    root: Path,
    name: str,
    fit: FoldFit,
    frames: Mapping[str, pd.DataFrame],
    labels: pd.Series,
) -> dict[str, dg.MetadataValue]:
    """The design's fold models of one model, written under ``root`` (logged with the model
    version); their Dagster metadata ({} when the design has none)."""
    run = design.fit_fold_models(root, name, fit, frames, labels, log=context.log.info)
    if run is None:
        return {}
    return {
        "evaluation_mode": dg.MetadataValue.text(design.mode),
        "cv_fold_models": dg.MetadataValue.int(len(run.summary)),
        "cv_oof_auroc": rounded(run.oof_auroc(labels)),
        "cv_seconds": rounded(run.seconds, 1),
        "cv_folds": frame_table(run.summary),
        "cv_plan_id": dg.MetadataValue.text(design.plan_id),
    }


def with_fold_models(
    result: dg.MaterializeResult, extra: Mapping[str, dg.MetadataValue]
) -> dg.MaterializeResult:
    """The deployed model's result with the fold models' metadata and data version added."""
    version = result.data_version
    if version is not None and "cv_plan_id" in extra:
        # Fold models (and so the evaluation) change with the plan even if the final model does not.
        version = dg.DataVersion(f"{version.value}-cv{extra['cv_plan_id'].value}")
    return dg.MaterializeResult(metadata={**(result.metadata or {}), **extra}, data_version=version)
