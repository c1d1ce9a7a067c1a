"""Cross-fitting for the non-neural references on small cohorts.

A neural strategy needs its validation split to stop early and to recalibrate. A
non-neural reference needs held-out patients only for recalibration, and on a small
cohort holding a fifth of the training patients out of its fit costs it real
discrimination: on the real cohorts a plain scikit-learn model fitted on every
training patient of a fold beat the same reference fitted on four fifths of them
(``benchmarks/results/real_cohorts.md``). So where the training and validation
patients together are few (``CROSSFIT_MAX_PATIENTS``), the reference is fitted on all
of them, and its recalibration and validation AUROC come from cross-fitted
predictions instead: every one of those patients scored by a copy of the reference
fitted without them (stratified ``CROSSFIT_FOLDS``-fold). Above that size the held-out
validation split costs the fit little and cross-fitting would cost ``CROSSFIT_FOLDS``
extra fits, so the reference is fitted on the training split as before.

Pure numpy / scikit-learn; no dagster.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.model_selection import StratifiedKFold

from fusion_assets.models.batch import subset_inputs
from fusion_assets.models.inputs import PreparedInputs
from fusion_assets.models.reference_features import NonNeuralModel

# Training + validation patients up to which the references are cross-fitted. The real
# CV cohorts' training folds hold 75-270 patients; support2's held-out split (7,300) and
# the synthetic default (4,000) stay above it, where a fifth held out costs little.
CROSSFIT_MAX_PATIENTS = 2_000
CROSSFIT_FOLDS = 5


def crossfit_applies(y_train: np.ndarray, y_val: np.ndarray) -> bool:
    """Cross-fit when there are validation patients, not too many patients in all, and at
    least 2 patients of each class to stratify folds by."""
    labels = np.concatenate([y_train, y_val])
    return (
        len(y_val) > 0
        and len(labels) <= CROSSFIT_MAX_PATIENTS
        and crossfit_folds(labels, 0) is not None
    )


def crossfit_folds(labels: np.ndarray, seed: int) -> StratifiedKFold | None:
    """Stratified folds, fewer when the smaller class is small; None below 2 per class."""
    smaller = int(min(labels.sum(), len(labels) - labels.sum()))
    if smaller < 2:
        return None
    return StratifiedKFold(min(CROSSFIT_FOLDS, smaller), shuffle=True, random_state=seed)


def crossfit(
    new_model: Callable[[], NonNeuralModel],
    prepared: PreparedInputs,
    labels: np.ndarray,
    seed: int,
) -> tuple[NonNeuralModel, np.ndarray]:
    """(the model fitted on every row, each row's probability from a model fitted without it)."""
    labels = np.asarray(labels).astype(np.int64)
    folds = crossfit_folds(labels, seed)
    if folds is None:
        raise ValueError("Cross-fitting needs at least 2 patients of each class.")
    oof = np.empty(len(labels))
    for fit_rows, out_rows in folds.split(np.zeros(len(labels)), labels):
        part = subset_inputs(prepared, fit_rows)
        model = new_model().fit(part, labels[fit_rows], part.present)
        held = subset_inputs(prepared, out_rows)
        oof[out_rows] = model.predict_proba(held, held.present)
    final = new_model().fit(prepared, labels, prepared.present)
    return final, oof
