"""The batch's result rows described: the check's verdict, markdown and headline numbers."""

from __future__ import annotations

import pandas as pd

from fusion_assets.disclosure import suppressed_count
from fusion_assets.reevaluation.inputs import BatchInputs
from fusion_assets.reevaluation.rows import DATA_STRATEGY, is_nan

TRAINING_BATCH = "training batch, not a re-evaluation"


def evaluation_status(inputs: BatchInputs) -> str:
    """What the performance rows of this batch are: a re-evaluation, or why not."""
    n, in_training = len(inputs.batch), inputs.n_in_training
    if inputs.is_training_batch:
        return (
            f"{TRAINING_BATCH}: all {n} patients are in profile.splits "
            "(the cohort the current models were fitted and tested on); no performance rows"
        )
    if in_training:
        shown = suppressed_count(in_training)
        return (
            f"re-evaluation on the {n - in_training} new patients; "
            f"{shown if shown is not None else 'fewer than 11'} patients already in "
            "profile.splits left out"
        )
    return f"re-evaluation on {n} new patients"


def check_problems(table: pd.DataFrame) -> list[str]:
    """AUROC intervals entirely below their reference interval and drift measures over their
    thresholds."""
    flagged = table.loc[table["flagged"]]
    below = flagged[flagged["metric"] == "auroc"]
    drift = flagged[flagged["kind"] == "drift"]
    return [
        f"{r.strategy}: batch AUROC {r.value:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}] lies below "
        f"the reference interval [{r.reference_low:.3f}, {r.reference_high:.3f}]"
        for r in below.itertuples()
    ] + [
        f"{r.strategy if r.strategy != DATA_STRATEGY else 'data'} {r.metric} {r.subgroup} = {r.value:.3f}"
        for r in drift.sort_values("value", ascending=False).head(10).itertuples()
    ]


def flag_counts(table: pd.DataFrame) -> dict[str, int]:
    flagged = table.loc[table["flagged"]]
    return {
        "auroc_below_reference": int((flagged["metric"] == "auroc").sum()),
        "drift_over_threshold": int((flagged["kind"] == "drift").sum()),
    }


def performance_frame(table: pd.DataFrame) -> pd.DataFrame:
    """AUROC per strategy and availability pattern, beside its reference interval."""
    perf = table[(table["kind"] == "performance") & (table["metric"] == "auroc")]
    columns = [
        "strategy",
        "subgroup",
        "value",
        "ci_low",
        "ci_high",
        "model_version",
        "reference_low",
        "reference_high",
        "suppressed",
        "flagged",
    ]
    return perf[columns].reset_index(drop=True)


def drift_frame(table: pd.DataFrame, top: int = 15) -> pd.DataFrame:
    """The largest drift measures, largest first."""
    drift = table[table["kind"] == "drift"].sort_values("value", ascending=False).head(top)
    return drift[["strategy", "metric", "subgroup", "value", "reference", "flagged"]].reset_index(
        drop=True
    )


def headline_numbers(table: pd.DataFrame) -> dict[str, float]:
    """``auroc_<strategy>``, ``pattern_total_variation`` and ``max_feature_psi`` where measured."""
    out: dict[str, float] = {}
    auroc_all = table[(table["metric"] == "auroc") & (table["subgroup"] == "all")]
    for r in auroc_all.itertuples():
        if r.value is not None and not is_nan(r.value):
            out[f"auroc_{r.strategy}"] = float(r.value)
    tv = table[table["metric"] == "pattern_total_variation"]["value"]
    if not tv.empty and tv.notna().all():
        out["pattern_total_variation"] = float(tv.iloc[0])
    psis = table[table["metric"] == "psi"]["value"].dropna()
    if not psis.empty:
        out["max_feature_psi"] = float(psis.max())
    return out


def mlflow_key(*parts: str) -> str:
    """MLflow metric names allow letters, digits and ``_-. /`` only."""
    text = ".".join(parts)
    return "".join(c if c.isalnum() or c in "_-./" else "_" for c in text)


def mlflow_metrics(table: pd.DataFrame) -> dict[str, float]:
    """The all-patients and drift values, unsuppressed (aggregates only)."""
    logged = table[table["value"].notna() & ~table["suppressed"]]
    logged = logged[(logged["subgroup"] == "all") | (logged["kind"] == "drift")]
    return {
        mlflow_key(r.strategy, r.metric, r.subgroup): float(r.value) for r in logged.itertuples()
    }
