"""The evaluation design as the encoder, fusion and evaluation assets use it.

The design (``fusion_assets.evaluation``) decides which fold models exist and
how predictions are assembled; these helpers only read it from the warehouse
and describe what it did in Dagster metadata. The fold models are logged in the
same registered version as the deployed model, so deployment and batch
re-evaluation never need to know the design.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
) -> tuple[Any, dict[str, dg.MetadataValue]]:
    """The design's fold models of one model, written under ``root`` (logged with the model
    version): the ``FoldRun`` (``None`` when the design has none) and their Dagster metadata
    ({} then)."""
    run = design.fit_fold_models(root, name, fit, frames, labels, log=context.log.info)
    if run is None:
        return None, {}
    return run, {
        "evaluation_mode": dg.MetadataValue.text(design.mode),
        "cv_fold_models": dg.MetadataValue.int(len(run.summary)),
        # the per-repeat single-model estimate, the report's headline figure
        "cv_oof_auroc": rounded(run.oof_auroc(labels)),
        "cv_seconds": rounded(run.seconds, 1),
        "cv_folds": frame_table(run.summary),
        "cv_plan_id": dg.MetadataValue.text(design.plan_id),
    }


# (on_epoch) -> (FittedModel, TrainResult), as training_run.Fit (not imported: it imports us)
Fit = Callable[[Callable[..., None]], tuple[Any, Any]]
# (epochs, on_epoch) -> (FittedModel, TrainResult): the deployed model on every patient
Refit = Callable[[int, Callable[..., None]], tuple[Any, Any]]


class DeployedFit:
    """The deployed model's fit: as given in the held-out design; in cross-validation,
    refitted on every patient the way the fold models were (``evaluation/refit.py``)."""

    def __init__(self, design: EvaluationDesign, name: str) -> None:
        self.design, self.name = design, name
        self.run: Any = None  # the FoldRun, once the fold models are fitted
        self.root: Path | None = None
        self.record: Any = None

    def fit_folds(
        self,
        context: dg.AssetExecutionContext,
        fit: FoldFit,
        frames: Mapping[str, pd.DataFrame],
        labels: pd.Series,
    ) -> Callable[[Path], dict[str, dg.MetadataValue]]:
        """``fit_save_track``'s ``fit_folds``: the fold models under the given folder, kept
        for the deployed refit (which runs after them)."""

        def fit_folds(root: Path) -> dict[str, dg.MetadataValue]:
            self.run, metadata = fit_fold_models(
                context, self.design, root, self.name, fit, frames, labels
            )
            self.root = root
            return metadata

        return fit_folds

    def fit(
        self,
        held_out: Fit,
        refit: Refit,
        labels: pd.Series,
        method: str,
        frames: Mapping[str, pd.DataFrame] | None = None,
    ) -> Callable[[Callable[..., None]], tuple[Any, Any]]:
        def fit(on_epoch: Callable[..., None]) -> tuple[Any, Any]:
            if self.run is None:
                return held_out(on_epoch)
            from fusion_assets.evaluation.refit import refit_deployed

            with models_ready():
                folds = self.design.load_fold_models(self.root, self.name)
            fitted, result, self.record = refit_deployed(
                lambda epochs: refit(epochs, on_epoch),
                self.run.summary,
                self.run.oof,
                labels,
                list(folds.values()),
                method,
                frames,
            )
            return fitted, result

        return fit

    def evidence(
        self, result: Any, labels: pd.Series, held_out_ids: list[str] | None = None
    ) -> Any:
        """What the fit checks read (``fit_checks.FitEvidence``): the validation AUROC, or
        in cross-validation the fold models' out-of-fold AUROC (the deployed refit has no
        patient held out); with ``held_out_ids`` (the validation patients) or in
        cross-validation, the class sizes of the held-out patients too."""
        from fusion_assets.fit_checks import FitEvidence

        if self.run is None:
            auroc = float(result.val_auroc)
            source = f"validation AUROC ({result.n_val} patients)"
            ids = held_out_ids
        else:
            auroc = self.run.oof_auroc(labels)
            source = f"out-of-fold AUROC of the {len(self.run.summary)} fold models"
            test = self.run.oof[self.run.oof["role"] == "test"]
            ids = test["patient_id"].drop_duplicates().tolist()
        counts: dict[str, int] = {}
        if ids is not None:
            by_id = pd.Series(labels.to_numpy(), index=labels.index.astype(str))
            y = by_id.reindex([str(p) for p in ids]).dropna()
            counts = {"n_events": int(y.sum()), "n_non_events": int(len(y) - y.sum())}
        return FitEvidence(
            auroc, source, result.iterative, len(result.history), result.fitted_by, **counts
        )

    def describe(
        self, context: dg.AssetExecutionContext, directory: Path
    ) -> dict[str, dg.MetadataValue]:
        """``fit_save_track``'s ``describe_fit``, on the saved (not yet registered) model."""
        """Write ``refit.json`` beside the deployed model, log it, and its metadata."""
        r = self.record
        if r is None:
            return {}
        r.write(directory)
        context.log.info(
            f"{self.name}: deployed model {r.how}; in-sample AUROC {r.train_auroc:.3f} on its "
            f"training patients against its fold models' median {r.fold_train_auroc:.3f} on "
            f"theirs (their inner-validation median {r.fold_val_auroc:.3f}); {r.recalibration}"
        )
        return {
            "refit": dg.MetadataValue.text(r.how),
            "refit_epochs": dg.MetadataValue.int(r.epochs),
            "refit_train_auroc": rounded(r.train_auroc),
            "fold_train_auroc_median": rounded(r.fold_train_auroc),
            "fold_val_auroc_median": rounded(r.fold_val_auroc),
            "refit_recalibration": dg.MetadataValue.text(r.recalibration),
        }


def with_fold_models(
    result: dg.MaterializeResult, extra: Mapping[str, dg.MetadataValue]
) -> dg.MaterializeResult:
    """The deployed model's result with the fold models' metadata and data version added."""
    version = result.data_version
    if version is not None and "cv_plan_id" in extra:
        # Fold models (and so the evaluation) change with the plan even if the final model does not.
        version = dg.DataVersion(f"{version.value}-cv{extra['cv_plan_id'].value}")
    return dg.MaterializeResult(
        metadata={**(result.metadata or {}), **extra},
        data_version=version,
        check_results=result.check_results,
    )
