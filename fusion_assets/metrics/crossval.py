"""Evaluation maths specific to cross-validated (small) cohorts; no patient identifiers out.

In cross-validation mode ``eval.predictions`` holds, per strategy and patient,
the out-of-fold probability averaged over the repeats, and the usual paired
patient bootstrap runs on those (see ``subgroups``). What the averaged numbers
hide is how much the estimate moves when only the fold assignment changes; the
per-repeat table below shows it beside the bootstrap interval.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from fusion_assets.metrics.classification import auroc

REPEAT_COLUMNS = ["strategy", "repeats", "auroc_mean", "auroc_sd", "auroc_min", "auroc_max"]


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
        return pd.DataFrame(columns=REPEAT_COLUMNS)
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
        "patient's test prediction comes only from models that never saw it (out-of-fold) and "
        f"is averaged over the {r} repeats. The deployed models are refitted on all patients."
    )


def cv_methods() -> list[str]:
    """Definitions added to the report's methods section in cross-validation mode."""
    return [
        "Cross-validation (small cohorts): 'test' means out-of-fold. Each patient's probability "
        "is averaged over the repeats first, then the same label-stratified paired patient "
        "bootstrap runs on those averages, so every patient counts once and the intervals "
        "reflect the cohort's size, not the number of repeats. Averaging over repeats removes "
        "most of the noise of one fold assignment (the per-repeat AUROC range shows what is "
        "left) but averages several fold models per patient, so the headline can be slightly "
        "optimistic for a single refitted model; the per-repeat mean AUROC is not.",
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
