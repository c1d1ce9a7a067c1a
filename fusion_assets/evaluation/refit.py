"""The deployed model of a cross-validated cohort: refitted the way its fold models were.

Pure code (torch through the fit it is given, no dagster). Early stopping on a
fifth of a small cohort picks an epoch from a handful of patients (on a
124-patient cohort the old refit stopped after 2 epochs at validation AUROC
0.492), so the deployed model is instead trained on *every* patient for the
median epoch at which its fold models stopped, with no early stopping; what
the fold models fitted on held-out patients comes from them:

- its recalibration is fitted on the fold models' out-of-fold predictions
  (before their own recalibration): every patient, predicted by models that
  never saw it, the cross-validated calibration of scikit-learn's
  ``CalibratedClassifierCV(ensemble=False)``;
- a model with parameters fitted on validation patients (late fusion's stack)
  takes the mean of its fold models' (``adopt_from_folds``).

There is no held-out patient left to score the deployed model on, so the
honest comparison is like with like: its AUROC on its own training patients
(in-sample) against the fold models' in-sample AUROC on theirs. A refit that
stopped too early or diverged is far below; ``REFIT_TOLERANCE`` is the check's
margin (``checks.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusion_assets.metrics.classification import auroc

REFIT_FILE = "refit.json"
# The deployed refit's in-sample AUROC may be at most this far below its fold models'.
REFIT_TOLERANCE = 0.05


@dataclass(frozen=True)
class RefitRecord:
    """How a deployed model was refitted, written beside it as ``refit.json``."""

    epochs: int  # 0: no epochs (closed-form or boosting: fitted as the fold models were)
    n_patients: int
    train_auroc: float  # the deployed model on its training patients (all of them)
    fold_train_auroc: float  # median over fold models, each on its own training patients
    fold_val_auroc: float  # median over fold models, on their inner validation patients
    recalibration: str
    how: str

    @property
    def in_line(self) -> bool:
        """False when the refit's in-sample AUROC is far below its fold models'."""
        if not (np.isfinite(self.train_auroc) and np.isfinite(self.fold_train_auroc)):
            return True  # nothing to compare (one class); the evaluation says so
        return self.train_auroc >= self.fold_train_auroc - REFIT_TOLERANCE

    def write(self, directory: Path) -> None:
        (Path(directory) / REFIT_FILE).write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def read(cls, directory: Path) -> RefitRecord | None:
        path = Path(directory) / REFIT_FILE
        return cls(**json.loads(path.read_text())) if path.exists() else None


def refit_epochs(summary: pd.DataFrame) -> int:
    """The median epoch at which the fold models stopped (0 when they have no epochs)."""
    epochs = summary["best_epoch"].to_numpy() if len(summary) else np.zeros(0)
    return int(round(float(np.median(epochs)))) if len(epochs) else 0


def refit_train_config(train: Any, epochs: int) -> Any:
    """The fold models' ``TrainConfig`` for exactly ``epochs`` epochs, no early stopping."""
    return replace(train, max_epochs=max(epochs, 1), early_stopping=False)


def deployed_recalibration(
    oof: pd.DataFrame, labels: pd.Series, method: str, min_events: int | None = None
):
    """The recalibration fitted on the fold models' raw out-of-fold predictions."""
    from fusion_assets.models.recalibration import MIN_EVENTS_PER_CLASS, fit_recalibration
    from fusion_assets.models.training import label_vector

    test = oof[oof["role"] == "test"]
    # one row per patient and repeat: the gate's folds keep a patient's rows together
    return fit_recalibration(
        test["raw_prob"].to_numpy(),
        label_vector(labels, test["patient_id"].tolist()),
        method,
        MIN_EVENTS_PER_CLASS if min_events is None else min_events,
        groups=test["patient_id"].to_numpy(),
    )


def refit_deployed(
    fit: Callable[[int], tuple[Any, Any]],
    summary: pd.DataFrame,
    oof: pd.DataFrame,
    labels: pd.Series,
    fold_models: Sequence[Any],
    method: str,
    frames: Mapping[str, pd.DataFrame] | None = None,
) -> tuple[Any, Any, RefitRecord]:
    """Refit on all patients with ``fit(epochs)``; recalibration and validation-fitted
    parameters from the fold models. Returns (fitted model, train result, record).

    ``frames`` (the aligned frames of ``labels``' patients) re-scores the in-sample AUROC
    when parameters were adopted from the fold models: the fit scored the model before.
    """
    epochs = refit_epochs(summary)
    fitted, result = fit(epochs)
    adopt = getattr(fitted.predictor, "adopt_from_folds", None)
    if adopt is not None:
        adopt([m.predictor for m in fold_models])
        if frames is not None:
            ids = list(labels.index)
            raw = fitted.predict_proba(fitted.prepare(dict(frames), ids), recalibrated=False)
            result.train_auroc = auroc(labels.loc[ids].to_numpy(), raw)
    train = getattr(fitted.config, "train", None)
    min_events = getattr(train, "recalibration_min_events", None)
    fitted.recalibration = deployed_recalibration(oof, labels, method, min_events)
    result.details["recalibration"] = fitted.recalibration.describe()
    how = (
        f"refitted on all {result.n_train} patients for {epochs} epoch(s), the median epoch "
        "at which its fold models stopped early, without early stopping"
        if epochs
        else f"refitted on all {result.n_train} patients as its fold models were fitted"
    )
    record = RefitRecord(
        epochs=epochs,
        n_patients=int(result.n_train),
        train_auroc=float(result.train_auroc),
        fold_train_auroc=_median(summary, "train_auroc"),
        fold_val_auroc=_median(summary, "val_auroc"),
        recalibration=fitted.recalibration.describe() + " (the fold models' out-of-fold rows)",
        how=how,
    )
    return fitted, result, record


def _median(summary: pd.DataFrame, column: str) -> float:
    values = summary[column].to_numpy(dtype=float) if column in summary else np.zeros(0)
    values = values[np.isfinite(values)]
    return float(np.median(values)) if len(values) else float("nan")
