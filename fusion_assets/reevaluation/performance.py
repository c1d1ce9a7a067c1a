"""Performance of one strategy on the batch's new labelled patients, per availability pattern.

n, events and AUROC per pattern (small cells suppressed), each AUROC with the
batch's own label-stratified bootstrap interval, the all-patients AUROC beside the
strategy's reference interval, and the PSI of its predicted probabilities against
its own test-split predictions. Patients already in the training cohort
(``profile.splits``) are left out: a model scored on the patients it was fitted or
tested on is not a re-evaluation.

The flag compares like with like: it is raised only when the batch's whole interval
lies below the reference's (``ci_high < reference_low``). A small batch's point
estimate falls below the reference interval by chance far more often than 2.5 %;
its wide interval does not.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fusion_assets.metrics.bootstrap import (
    percentile_ci,
    stratified_bootstrap_counts,
    weighted_auroc,
)
from fusion_assets.metrics.classification import auroc
from fusion_assets.metrics.drift import psi
from fusion_assets.reevaluation.inputs import BatchInputs
from fusion_assets.reevaluation.rows import ResultRows
from fusion_assets.reevaluation.settings import BatchEvaluationSettings


def auroc_interval(
    y: np.ndarray, p: np.ndarray, config: BatchEvaluationSettings
) -> tuple[float, float]:
    """The batch's own percentile interval of the AUROC (label-stratified bootstrap)."""
    if len(np.unique(y)) < 2:
        return float("nan"), float("nan")
    counts = stratified_bootstrap_counts(y.astype(int), config.n_boot, config.seed)
    return percentile_ci(weighted_auroc(y.astype(int), p, counts), config.ci_level)


def below_reference(ci_high: float, reference_low: float) -> bool:
    """Like with like: the batch's interval lies entirely below the reference interval."""
    return bool(np.isfinite(ci_high) and np.isfinite(reference_low) and ci_high < reference_low)


def _reference_extra(reference: pd.Series | None, ci_high: float) -> dict:
    """The reference interval columns of the all-patients AUROC row, and its flag."""
    if reference is None:
        return {}
    low = float(reference["ci_low"])
    return {
        "reference": float(reference["auroc"]),
        "reference_low": low,
        "reference_high": float(reference["ci_high"]),
        "flagged": below_reference(ci_high, low),
    }


def evaluated_mask(inputs: BatchInputs) -> np.ndarray:
    """The batch's labelled patients that are new to the models (not in profile.splits)."""
    return inputs.batch["label"].notna().to_numpy() & ~inputs.in_training


def subgroup_performance(
    strategy: str,
    probs: np.ndarray,
    inputs: BatchInputs,
    config: BatchEvaluationSettings,
    rows: ResultRows,
    model_version: int | None = None,
) -> None:
    """n, events and AUROC for all new labelled patients and per availability pattern."""
    batch = inputs.batch
    labelled = evaluated_mask(inputs)
    y_all = batch["label"].to_numpy(dtype=float)
    reference = None
    if inputs.reference_auroc is not None and strategy in inputs.reference_auroc.index:
        reference = inputs.reference_auroc.loc[strategy]
    groups = [("all", labelled)] + [
        (pattern, labelled & (batch["pattern"] == pattern).to_numpy())
        for pattern in sorted(batch.loc[labelled, "pattern"].unique())
    ]
    version = {"model_version": model_version}
    for subgroup, mask in groups:
        n = int(mask.sum())
        y, p = y_all[mask], probs[mask]
        if n < config.suppress_below:
            for metric in ("n", "events", "auroc"):
                rows.add(
                    strategy, "performance", metric, subgroup, None, suppressed=True, **version
                )
            continue
        rows.add(strategy, "performance", "n", subgroup, n, **version)
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
            **version,
        )
        value = auroc(y, p)
        low, high = auroc_interval(y, p, config)
        extra = _reference_extra(reference, high) if subgroup == "all" else {}
        rows.add(
            strategy,
            "performance",
            "auroc",
            subgroup,
            value,
            ci_low=None if np.isnan(low) else low,
            ci_high=None if np.isnan(high) else high,
            **extra,
            **version,
        )
    if labelled.any():
        for metric, value in (
            ("mean_prob", float(probs[labelled].mean())),
            ("event_rate", float(y_all[labelled].mean())),
        ):
            rows.add(strategy, "performance", metric, "all", value, **version)


def prediction_drift(
    strategy: str,
    probs: np.ndarray,
    inputs: BatchInputs,
    config: BatchEvaluationSettings,
    rows: ResultRows,
    model_version: int | None = None,
) -> None:
    """PSI of the new patients' predicted probabilities against the test split's."""
    if inputs.reference_predictions is None:
        return
    new = ~inputs.in_training
    ref = inputs.reference_predictions
    ref_probs = ref.loc[ref["strategy"] == strategy, "prob"].to_numpy(float)
    if ref_probs.size and new.any():
        value = psi(ref_probs, probs[new], bins=config.psi_bins)
        rows.add(
            strategy,
            "drift",
            "prediction_psi",
            "all",
            value,
            flagged=bool(np.isfinite(value) and value > config.psi_threshold),
            model_version=model_version,
        )


def strategy_rows(
    strategy: str,
    probs: np.ndarray,
    inputs: BatchInputs,
    config: BatchEvaluationSettings,
    rows: ResultRows,
    model_version: int | None = None,
) -> None:
    """Every performance and prediction-drift row of one strategy; none for a training batch
    (its patients are the ones the models were fitted and tested on)."""
    if inputs.is_training_batch:
        return
    subgroup_performance(strategy, probs, inputs, config, rows, model_version)
    prediction_drift(strategy, probs, inputs, config, rows, model_version)
