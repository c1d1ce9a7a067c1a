"""Clinical utility of every strategy: decision curves and net benefit at named thresholds.

TRIPOD+AI item 12e asks how a model's predictions would be used. The decision curve
(``metrics/net_benefit.py``) shows for each risk threshold whether acting on a
strategy's predictions beats treating everyone or no one. Two outputs:

- ``curves``: net benefit across the threshold range (0.01 to ``decision_curve_max`` in steps of 0.01),
  for all held-out patients and for each availability pattern with at least
  ``min_pattern_size`` of them, with treat all / treat none: what the plot draws;
- ``table``: net benefit at the named thresholds (``net_benefit_thresholds``) with
  paired bootstrap intervals for all held-out patients (the same resamples for every
  strategy), and the point values per availability pattern.

In cross-validation mode every value is computed per repeat and averaged, as in the
subgroup table. Pure numpy / pandas; no dagster.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fusion_assets.metrics.bootstrap import percentile_ci, stratified_bootstrap_counts
from fusion_assets.metrics.config import EvaluationConfig
from fusion_assets.metrics.net_benefit import (
    TREAT_ALL,
    TREAT_NONE,
    weighted_net_benefit,
    weighted_treat_all,
)
from fusion_assets.metrics.subgroups import repeat_mean, repeat_probabilities, wide_probabilities

UTILITY_COLUMNS = [
    "subgroup_type",
    "subgroup",
    "n",
    "strategy",
    "threshold",
    "net_benefit",
    "ci_low",
    "ci_high",
    "above_treat_all",
]
CURVE_COLUMNS = ["subgroup", "strategy", "threshold", "net_benefit"]


@dataclass
class Utility:
    table: pd.DataFrame  # UTILITY_COLUMNS
    curves: pd.DataFrame  # CURVE_COLUMNS


def clinical_utility(
    predictions: pd.DataFrame,
    patients: pd.DataFrame,
    config: EvaluationConfig,
    repeats: pd.DataFrame | None = None,
) -> Utility:
    """Decision curves and the named-threshold net-benefit table of the test patients."""
    test, strategies = wide_probabilities(predictions, patients, "test")
    y = test["label"].to_numpy().astype(np.float64)
    per_repeat = repeat_probabilities(repeats, test, strategies)
    named = np.asarray(config.net_benefit_thresholds, dtype=np.float64)
    grid = np.round(np.arange(0.01, config.decision_curve_max + 0.005, 0.01), 6)
    groups: list[tuple[str, str, np.ndarray]] = [("all", "all", np.ones(len(y), dtype=bool))]
    if "pattern" in test.columns:
        sizes = test["pattern"].value_counts()
        for pattern in sizes[sizes >= max(config.min_pattern_size, config.suppress_below)].index:
            groups.append(("pattern", str(pattern), (test["pattern"] == pattern).to_numpy()))
    rows, curve_rows = [], []
    counts = stratified_bootstrap_counts(y.astype(int), config.n_boot, config.seed).astype(
        np.float64
    )
    for kind, name, mask in groups:
        ym = y[mask]
        curves = {s: _mean_nb(ym, [r[s][mask] for r in per_repeat], grid) for s in strategies}
        curves[TREAT_ALL] = weighted_treat_all(ym, grid, np.ones(len(ym)))[:, 0]
        curves[TREAT_NONE] = np.zeros(len(grid))
        for s, values in curves.items():
            curve_rows += [
                {"subgroup": name, "strategy": s, "threshold": t, "net_benefit": v}
                for t, v in zip(grid, values, strict=True)
            ]
        treat_all = weighted_treat_all(ym, named, np.ones(len(ym)))[:, 0]
        for s in [*strategies, TREAT_ALL]:
            if s == TREAT_ALL:
                point, boot = (
                    treat_all,
                    (weighted_treat_all(ym, named, counts) if kind == "all" else None),
                )
            else:
                probs = [r[s][mask] for r in per_repeat]
                point = _mean_nb(ym, probs, named)
                boot = _mean_nb(ym, probs, named, counts) if kind == "all" else None
            for k, t in enumerate(named):
                lo, hi = (
                    percentile_ci(boot[k], config.ci_level)
                    if boot is not None
                    else (np.nan, np.nan)
                )
                rows.append(
                    {
                        "subgroup_type": kind,
                        "subgroup": name,
                        "n": int(mask.sum()),
                        "strategy": s,
                        "threshold": float(t),
                        "net_benefit": float(point[k]),
                        "ci_low": lo,
                        "ci_high": hi,
                        "above_treat_all": bool(point[k] > max(treat_all[k], 0.0))
                        if s != TREAT_ALL
                        else None,
                    }
                )
    return Utility(
        pd.DataFrame(rows, columns=UTILITY_COLUMNS), pd.DataFrame(curve_rows, columns=CURVE_COLUMNS)
    )


def _mean_nb(
    y: np.ndarray, probs: list[np.ndarray], thresholds: np.ndarray, counts: np.ndarray | None = None
) -> np.ndarray:
    """Net benefit averaged over repeats; a patient a repeat did not score has weight 0."""
    out = []
    for p in probs:
        ok = np.isfinite(p)
        w = (np.ones(len(y)) if counts is None else counts) * (
            ok if counts is None else ok[:, None]
        )
        nb = weighted_net_benefit(y, np.where(ok, p, 0.0), thresholds, w)
        out.append(nb[:, 0] if counts is None else nb)
    return repeat_mean(np.stack(out))
