"""Net benefit and decision curves (Vickers & Elkin), under bootstrap or importance weights.

Net benefit of treating patients whose predicted risk is at least the threshold t:

    NB(t) = TP(t) / N - FP(t) / N * t / (1 - t)

with TP/FP/N weighted sums (a bootstrap count, or an importance weight of the
deployment mix, per patient). "Treat all" is NB = prevalence - (1 - prevalence) ·
t / (1 - t); "treat none" is 0. A model is useful at t only where its NB is above
both. Every function takes a weight matrix ``(n, B)`` (a vector is one resample),
so the same paired resamples as the AUROC give the intervals.

Pure numpy; no dagster.
"""

from __future__ import annotations

import numpy as np

from fusion_assets.metrics.bootstrap import as_weights

TREAT_ALL = "treat all"
TREAT_NONE = "treat none"


def _odds(thresholds: np.ndarray) -> np.ndarray:
    t = np.asarray(thresholds, dtype=np.float64)
    if ((t <= 0) | (t >= 1)).any():
        raise ValueError(f"net benefit thresholds must lie in (0, 1), got {t.tolist()}")
    return t / (1.0 - t)


def weighted_net_benefit(
    y: np.ndarray, p: np.ndarray, thresholds: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Net benefit ``(T, B)`` of treating at ``p >= t`` for each threshold and resample."""
    y = np.asarray(y, dtype=np.float64).ravel()
    p = np.asarray(p, dtype=np.float64).ravel()
    w = as_weights(weights, y.size)
    treated = (p[:, None] >= np.asarray(thresholds, dtype=np.float64)[None, :]).astype(np.float64)
    # (T, n) @ (n, B): weighted true and false positives of every threshold at once
    tp = (treated * y[:, None]).T @ w
    fp = (treated * (1.0 - y)[:, None]).T @ w
    total = w.sum(axis=0)[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (tp - fp * _odds(thresholds)[:, None]) / total


def weighted_treat_all(y: np.ndarray, thresholds: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Net benefit ``(T, B)`` of treating everyone."""
    y = np.asarray(y, dtype=np.float64).ravel()
    w = as_weights(weights, y.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        prevalence = (y @ w) / w.sum(axis=0)
    return prevalence[None, :] - (1.0 - prevalence[None, :]) * _odds(thresholds)[:, None]


def decision_curve(
    y: np.ndarray, probs: dict[str, np.ndarray], thresholds: np.ndarray
) -> dict[str, np.ndarray]:
    """Point net benefit per strategy (and treat all / treat none) across ``thresholds``."""
    ones = np.ones(len(y))
    curves = {name: weighted_net_benefit(y, p, thresholds, ones)[:, 0] for name, p in probs.items()}
    curves[TREAT_ALL] = weighted_treat_all(y, thresholds, ones)[:, 0]
    curves[TREAT_NONE] = np.zeros(len(thresholds))
    return curves
