"""Plain scikit-learn baselines on the pipeline's own folds.

Two models on every modality's features concatenated (an absent modality is
NaN in all its columns):

- ``baseline:hgb``: a default ``HistGradientBoostingClassifier`` (native missing
  values; text columns as pandas categoricals, which it splits on natively);
- ``baseline:logistic``: L2 ``LogisticRegression`` (C = 1) after median
  imputation with missing indicators and standardisation; text columns one-hot
  encoded with "missing" as a level.

Columns without any value in a fold's training rows are dropped for that fold.
Each is fitted on everything the pipeline's fold model could learn from (the
training folds including their inner validation part; in held-out mode the
train and validation splits) and predicts the same test patients: per repeat
and fold in cross-validation, the test split in held-out mode. The output has
the layout of ``eval.predictions`` / ``eval.oof_predictions``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from real_cohorts.readout import PipelineRun

HGB = "baseline:hgb"
LOGISTIC = "baseline:logistic"
BASELINES = (HGB, LOGISTIC)
# What a model sees of its training rows: (fit on X, y) -> predict_proba on X_test.
Fitter = Callable[[pd.DataFrame, np.ndarray, pd.DataFrame], np.ndarray]


def _text_columns(x: pd.DataFrame) -> list[str]:
    return [c for c in x.columns if not pd.api.types.is_numeric_dtype(x[c])]


def fit_hgb(x: pd.DataFrame, y: np.ndarray, x_test: pd.DataFrame) -> np.ndarray:
    """Default HGB; text columns become categoricals with the training rows' levels."""
    x, x_test = x.copy(), x_test.copy()
    for c in _text_columns(x):
        levels = sorted(x[c].dropna().astype(str).unique())
        x[c] = pd.Categorical(x[c].astype("string"), categories=levels)
        x_test[c] = pd.Categorical(x_test[c].astype("string"), categories=levels)
    model = HistGradientBoostingClassifier(random_state=0).fit(x, y)
    return model.predict_proba(x_test)[:, 1]


def _logistic_pipeline(x: pd.DataFrame) -> Pipeline:
    text = _text_columns(x)
    numeric = [c for c in x.columns if c not in text]
    columns = ColumnTransformer(
        [
            (
                "numeric",
                make_pipeline(
                    SimpleImputer(strategy="median", add_indicator=True), StandardScaler()
                ),
                numeric,
            ),
            (
                "text",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="missing"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                text,
            ),
        ]
    )
    # max_iter above the default so that wide (10^4-column) folds converge.
    return make_pipeline(columns, LogisticRegression(C=1.0, max_iter=5000))


def fit_logistic(x: pd.DataFrame, y: np.ndarray, x_test: pd.DataFrame) -> np.ndarray:
    text = _text_columns(x)
    x, x_test = x.copy(), x_test.copy()
    x[text] = x[text].astype(object).where(x[text].notna(), np.nan)
    x_test[text] = x_test[text].astype(object).where(x_test[text].notna(), np.nan)
    model = _logistic_pipeline(x).fit(x, y)
    return model.predict_proba(x_test)[:, 1]


FITTERS: dict[str, Fitter] = {HGB: fit_hgb, LOGISTIC: fit_logistic}


def fold_assignments(run: PipelineRun) -> Iterator[tuple[int, int, list[str], list[str]]]:
    """(repeat, fold, training ids, test ids) of every fold model the pipeline trained."""
    if run.mode == "cv":
        for (repeat, fold), g in run.folds.groupby(["repeat", "fold"], sort=True):
            learn = g.loc[g["role"] != "test", "patient_id"].tolist()
            yield int(repeat), int(fold), learn, g.loc[g["role"] == "test", "patient_id"].tolist()
        return
    split = run.splits.set_index("patient_id")["split"]
    learn = split.index[split.isin(["train", "validation"])].tolist()
    yield 0, 0, learn, split.index[split == "test"].tolist()


def baseline_predictions(
    run: PipelineRun, features: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame | None, dict[str, float], dict[int, int]]:
    """Predictions, per-repeat out-of-fold rows (None in held-out mode), seconds per model,
    and how many fold models dropped how many empty columns."""
    labels = run.patients.set_index("patient_id")["label"].astype(int)
    rows, seconds = [], dict.fromkeys(FITTERS, 0.0)
    dropped: dict[int, int] = {}  # empty training columns -> number of fold models
    for repeat, fold, learn, test in fold_assignments(run):
        # A column with no value in the training rows (e.g. a time bin nobody has) is
        # dropped: scikit-learn's HGB binning raises "window shape cannot be larger than
        # input array shape" on it, and imputation has nothing to learn from.
        observed = features.columns[features.loc[learn].notna().any()]
        empty = features.shape[1] - len(observed)
        dropped[empty] = dropped.get(empty, 0) + 1
        x, x_test = features.loc[learn, observed], features.loc[test, observed]
        for name, fit in FITTERS.items():
            t0 = time.perf_counter()
            prob = fit(x, labels.loc[learn].to_numpy(), x_test)
            seconds[name] += time.perf_counter() - t0
            rows.append(
                pd.DataFrame(
                    {
                        "strategy": name,
                        "repeat": repeat,
                        "fold": fold,
                        "patient_id": test,
                        "role": "test",
                        "prob": prob,
                    }
                )
            )
    oof = pd.concat(rows, ignore_index=True)
    # eval.predictions' test rows: in cv mode the mean over repeats (the report's
    # metrics come from the per-repeat rows; these only define the test cohort).
    predictions = (
        oof.groupby(["strategy", "patient_id"], as_index=False)["prob"]
        .mean()
        .assign(split="test")[["strategy", "patient_id", "split", "prob"]]
    )
    return predictions, (oof if run.mode == "cv" else None), seconds, dropped
