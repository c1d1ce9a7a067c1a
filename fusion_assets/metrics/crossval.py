"""Evaluation maths specific to cross-validated (small) cohorts; no patient identifiers out.

In cross-validation mode every metric of the subgroup table is computed per
repeat on that repeat's out-of-fold predictions and averaged over the repeats
(see ``subgroups``), so the headline is a single-model estimate: the mean of
the per-repeat values this module tabulates for the all-patients AUROC. The
per-repeat table shows how much one fold assignment alone moves the estimate.
"""

from __future__ import annotations

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
