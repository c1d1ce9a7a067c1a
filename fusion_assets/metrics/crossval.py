"""Evaluation maths specific to cross-validated (small) cohorts; no patient identifiers out.

In cross-validation mode every metric of the subgroup table is computed per
repeat on that repeat's out-of-fold predictions and averaged over the repeats
(see ``subgroups``), so the headline is a single-model estimate: the mean of
the per-repeat values this module tabulates for the all-patients AUROC. The
per-repeat table shows how much one fold assignment alone moves the estimate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from fusion_assets.metrics.classification import auroc

REPEAT_COLUMNS = ["strategy", "repeats", "auroc_mean", "auroc_sd", "auroc_min", "auroc_max"]


def empty_repeat_table() -> pd.DataFrame:
    """The per-repeat table without rows (a design without repeats), with its column types."""
    types = {"strategy": str, "repeats": "int64"} | {c: "float64" for c in REPEAT_COLUMNS[2:]}
    return pd.DataFrame({c: pd.Series(dtype=types[c]) for c in REPEAT_COLUMNS})


def repeat_aurocs(oof: pd.DataFrame, patients: pd.DataFrame) -> pd.DataFrame:
    """All-patients AUROC of each strategy's out-of-fold predictions, per repeat.

    ``oof``: ``strategy, repeat, patient_id, role, prob`` (``role == 'test'`` rows
    are used); ``patients``: ``patient_id, label``. Columns: ``REPEAT_COLUMNS``.
    """
    test = oof.loc[oof["role"] == "test", ["strategy", "repeat", "patient_id", "prob"]]
    test = test.merge(patients[["patient_id", "label"]], on="patient_id", how="inner")
    per_repeat = [
        (strategy, repeat, auroc(g["label"].to_numpy(), g["prob"].to_numpy()))
        for (strategy, repeat), g in test.groupby(["strategy", "repeat"], sort=True)
    ]
    frame = pd.DataFrame(per_repeat, columns=["strategy", "repeat", "auroc"])
    if frame.empty:
        return empty_repeat_table()
    out = (
        frame.groupby("strategy")["auroc"]
        .agg(repeats="size", auroc_mean="mean", auroc_sd="std", auroc_min="min", auroc_max="max")
        .reset_index()
    )
    return out[REPEAT_COLUMNS].sort_values("auroc_mean", ascending=False, ignore_index=True)


def describe_cv(evaluation: Mapping[str, Any]) -> str:
    """One sentence naming the evaluation design (for the report's cohort section)."""
    k, r = evaluation.get("folds"), evaluation.get("repeats")
    return (
        f"Small cohort ({evaluation.get('n_patients')} patients, under "
        f"{evaluation.get('small_cohort_size')}): evaluated by repeated stratified {k}-fold "
        f"cross-validation ({k} folds x {r} repeats, folds stratified by label x availability "
        "pattern). Every strategy and single-modality baseline was retrained per fold; each "
        "patient's test prediction comes only from models that never saw it (out-of-fold); "
        f"every metric is computed per repeat and averaged over the {r} repeats. The deployed "
        "models are refitted on all patients."
    )


def cv_methods() -> list[str]:
    """Definitions added to the report's methods section in cross-validation mode."""
    return [
        "Cross-validation (small cohorts): 'test' means out-of-fold, and each repeat predicts "
        "every patient exactly once. Every metric (AUROC, AUPRC, Brier, calibration, ECE, "
        "sensitivity / specificity, oracle lift, ΔAUROC) is computed per repeat on that "
        "repeat's predictions and the point estimates are averaged over the repeats; the "
        "reliability bins likewise. Probabilities are never averaged over repeats first: that "
        "would score a small ensemble of fold models and flatter the one deployed model.",
        "Cross-validation intervals: one label-stratified patient bootstrap per subgroup, the "
        "same resampled patients for every repeat and every strategy (paired). Each resample's "
        "statistic is averaged over the repeats before the percentile interval is taken, so "
        "every patient counts once, the interval reflects patient sampling at the cohort's "
        "size, and the repeat-to-repeat (fold assignment) variation is averaged out rather "
        "than added; the per-repeat AUROC range shows that variation separately.",
        "Cross-validation thresholds and the best single modality come from the inner "
        "validation predictions: each fold model keeps part of its training folds aside "
        "(stratified) for early stopping and late-fusion stacking, and its predictions on those "
        "patients, averaged per patient, form the 'validation' rows.",
    ]


def repeat_display(table: pd.DataFrame) -> pd.DataFrame:
    """The per-repeat table formatted for the report."""

    def fmt(x: float) -> str:
        return "–" if not np.isfinite(x) else f"{x:.3f}"

    return pd.DataFrame(
        {
            "strategy": table["strategy"],
            "repeats": table["repeats"],
            "AUROC mean over repeats": table["auroc_mean"].map(fmt),
            "sd": table["auroc_sd"].fillna(np.nan).map(fmt),
            "min – max": [
                f"{fmt(lo)} – {fmt(hi)}" for lo, hi in table[["auroc_min", "auroc_max"]].values
            ],
        }
    )
