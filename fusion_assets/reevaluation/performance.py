"""Performance of one strategy on the batch's labelled patients, per availability pattern.

n, events and AUROC per pattern (small cells suppressed), the all-patients AUROC
against the strategy's reference interval, and the PSI of its predicted
probabilities against its own test-split predictions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fusion_assets.metrics.classification import auroc
from fusion_assets.metrics.drift import psi
from fusion_assets.reevaluation.inputs import BatchInputs
from fusion_assets.reevaluation.rows import ResultRows
from fusion_assets.reevaluation.settings import BatchEvaluationSettings


def _reference_extra(reference: pd.Series | None, value: float) -> dict:
    """The reference interval columns of the all-patients AUROC row, and its flag."""
    if reference is None:
        return {}
    low = float(reference["ci_low"])
    return {
        "reference": float(reference["auroc"]),
        "reference_low": low,
        "reference_high": float(reference["ci_high"]),
        "flagged": bool(np.isfinite(value) and np.isfinite(low) and value < low),
    }


def subgroup_performance(
    strategy: str,
    probs: np.ndarray,
    inputs: BatchInputs,
    config: BatchEvaluationSettings,
    rows: ResultRows,
) -> None:
    """n, events and AUROC for all labelled patients and per availability pattern."""
    batch = inputs.batch
    labelled = batch["label"].notna().to_numpy()
    y_all = batch["label"].to_numpy(dtype=float)
    reference = None
    if inputs.reference_auroc is not None and strategy in inputs.reference_auroc.index:
        reference = inputs.reference_auroc.loc[strategy]
    groups = [("all", labelled)] + [
        (pattern, labelled & (batch["pattern"] == pattern).to_numpy())
        for pattern in sorted(batch["pattern"].unique())
    ]
    for subgroup, mask in groups:
        n = int(mask.sum())
        y, p = y_all[mask], probs[mask]
        if n < config.suppress_below:
            for metric in ("n", "events", "auroc"):
                rows.add(strategy, "performance", metric, subgroup, None, suppressed=True)
            continue
        rows.add(strategy, "performance", "n", subgroup, n)
        events = int(y.sum())
        # An event count (or its complement) under the limit is itself a small cell.
        small = min(events, n - events) < config.suppress_below
        rows.add(
            strategy,
            "performance",
            "events",
            subgroup,
            None if small else float(events),
            suppressed=small,
        )
        value = auroc(y, p)
        extra = _reference_extra(reference, value) if subgroup == "all" else {}
        rows.add(strategy, "performance", "auroc", subgroup, value, **extra)
    if labelled.any():
        rows.add(strategy, "performance", "mean_prob", "all", float(probs[labelled].mean()))
        rows.add(strategy, "performance", "event_rate", "all", float(y_all[labelled].mean()))


def prediction_drift(
    strategy: str,
    probs: np.ndarray,
    inputs: BatchInputs,
    config: BatchEvaluationSettings,
    rows: ResultRows,
) -> None:
    """PSI of the batch's predicted probabilities against the test split's."""
    if inputs.reference_predictions is None:
        return
    ref = inputs.reference_predictions
    ref_probs = ref.loc[ref["strategy"] == strategy, "prob"].to_numpy(float)
    if ref_probs.size:
        value = psi(ref_probs, probs, bins=config.psi_bins)
        rows.add(
            strategy,
            "drift",
            "prediction_psi",
            "all",
            value,
            flagged=bool(np.isfinite(value) and value > config.psi_threshold),
        )


def strategy_rows(
    strategy: str,
    probs: np.ndarray,
    inputs: BatchInputs,
    config: BatchEvaluationSettings,
    rows: ResultRows,
) -> None:
    subgroup_performance(strategy, probs, inputs, config, rows)
    prediction_drift(strategy, probs, inputs, config, rows)
