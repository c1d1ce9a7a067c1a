"""Point metrics for a binary classifier's probabilities.

Every function takes ``y`` (0/1 labels) and ``p`` (predicted probability of the
positive class) as 1-d arrays of equal length and returns a float. Where a
metric is undefined (one class only, empty input) the result is NaN and
:func:`undefined_reason` says why, so callers can record the reason instead of
a bare NaN.

Definitions (n patients, P positives, N negatives):

- **AUROC**: probability that a random positive scores above a random negative,
  ties counted one half (Mann-Whitney U / (P N)).
- **AUPRC** (average precision): sum over distinct thresholds t (descending) of
  (recall(t) - recall(t_prev)) * precision(t); identical to scikit-learn's
  ``average_precision_score`` (no interpolation).
- **Brier**: mean((p - y)^2). **Scaled Brier**: 1 - Brier / Brier_prev where
  Brier_prev = prevalence * (1 - prevalence) is the Brier of always predicting
  the prevalence; 0 = no better than the prevalence, 1 = perfect.
- **Calibration slope**: b in logit P(y=1) = a + b * logit(p), fitted by maximum
  likelihood. 1 = ideal; < 1 means predictions are too extreme.
- **Calibration intercept** (calibration-in-the-large): a in
  logit P(y=1) = a + logit(p), i.e. logit(p) as a fixed offset with slope 1.
  0 = ideal; > 0 means the model under-predicts on average.
- **ECE** (equal-mass bins): patients sorted by p and split into ``n_bins``
  groups of (nearly) equal size; sum over bins of (n_b / n) |mean(y_b) - mean(p_b)|.
- **Threshold**: chosen on the validation split (see :class:`ThresholdRule`),
  then applied on test: predicted positive iff p >= threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.special import expit

# Probabilities are clipped to [EPS, 1 - EPS] before taking logits so that a
# model that outputs exactly 0 or 1 still has finite calibration parameters.
EPS = 1e-6


def _as_arrays(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64).ravel()
    p = np.asarray(p, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels and probabilities differ in length: {y.size} vs {p.size}")
    return y, p


def undefined_reason(y: np.ndarray) -> str | None:
    """Why ranking metrics are undefined for these labels, or None if they are defined."""
    y = np.asarray(y).ravel()
    if y.size == 0:
        return "no patients"
    pos = int(np.sum(y == 1))
    if pos == 0:
        return "no events (one class only)"
    if pos == y.size:
        return "no non-events (one class only)"
    return None


def logit(p: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)) after clipping p to [EPS, 1 - EPS]."""
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1.0 - EPS)
    return np.log(p) - np.log1p(-p)


def auroc(y: np.ndarray, p: np.ndarray) -> float:
    """Rank-based AUROC with ties counted one half (NaN for one class)."""
    y, p = _as_arrays(y, p)
    if undefined_reason(y) is not None:
        return float("nan")
    # Average ranks handle ties exactly: U = sum of positive ranks - P(P+1)/2.
    order = np.argsort(p, kind="mergesort")
    ps = p[order]
    ranks = np.empty(p.size, dtype=np.float64)
    # Boundaries of tie groups in the sorted scores.
    starts = np.flatnonzero(np.r_[True, ps[1:] != ps[:-1]])
    ends = np.r_[starts[1:], p.size]
    avg = (starts + ends + 1) / 2.0  # mean of 1-based ranks start+1 .. end
    ranks[order] = np.repeat(avg, ends - starts)
    n_pos = y.sum()
    n_neg = y.size - n_pos
    u = ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _threshold_counts(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct scores in descending order, with true and false positives at each.

    "Positive iff p >= t": the last index of each tie group is one threshold.
    """
    order = np.argsort(-p, kind="mergesort")
    ps, ys = p[order], y[order]
    last = np.flatnonzero(np.r_[ps[1:] != ps[:-1], True])
    tp = np.cumsum(ys)[last]
    return ps[last], tp, (last + 1) - tp


def average_precision(y: np.ndarray, p: np.ndarray) -> float:
    """Average precision (step-wise area under the PR curve), as scikit-learn computes it."""
    y, p = _as_arrays(y, p)
    if undefined_reason(y) is not None:
        return float("nan")
    _, tp, fp = _threshold_counts(y, p)
    precision = tp / (tp + fp)
    recall = tp / tp[-1]
    d_recall = np.diff(np.r_[0.0, recall])
    return float(np.sum(d_recall * precision))


def brier(y: np.ndarray, p: np.ndarray) -> float:
    """Mean squared error of the probabilities (NaN for no patients)."""
    y, p = _as_arrays(y, p)
    if y.size == 0:
        return float("nan")
    return float(np.mean((p - y) ** 2))


def scaled_brier(y: np.ndarray, p: np.ndarray) -> float:
    """1 - Brier / (prevalence (1 - prevalence)); NaN when only one class is present."""
    y, p = _as_arrays(y, p)
    if undefined_reason(y) is not None:
        return float("nan")
    prev = y.mean()
    return float(1.0 - brier(y, p) / (prev * (1.0 - prev)))


def newton_logistic(
    x: np.ndarray,
    y: np.ndarray,
    offset: np.ndarray,
    n_iter: int = 50,
    tol: float = 1e-10,
    weights: np.ndarray | None = None,
) -> np.ndarray | None:
    """Unpenalised logistic regression y ~ x @ beta + offset by Newton-Raphson.

    ``x`` is the (n, k) design (k is 1 or 2 here, so the k x k solve is trivial);
    ``weights`` (optional, one per row) weight each row's log-likelihood, so integer
    counts fit exactly what repeating rows would. Returns None if the fit does not
    converge (e.g. perfect separation, where the maximum-likelihood estimate is infinite).
    """
    obs = np.ones_like(y) if weights is None else np.asarray(weights, dtype=np.float64)
    beta = np.zeros(x.shape[1])
    for _ in range(n_iter):
        eta = x @ beta + offset
        mu = expit(eta)  # overflow-safe sigmoid
        w = obs * mu * (1.0 - mu)
        grad = x.T @ (obs * (y - mu))
        hess = (x * w[:, None]).T @ x
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            return None
        beta = beta + step
        if not np.all(np.isfinite(beta)):
            return None
        if np.max(np.abs(step)) < tol:
            return beta
    # Slow convergence: accept only if the last step was already tiny.
    return beta if np.max(np.abs(step)) < 1e-6 else None


def calibration_intercept_slope(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """(calibration-in-the-large intercept, calibration slope); see module docstring.

    Both are NaN for one class or when the maximum-likelihood fit diverges.
    """
    y, p = _as_arrays(y, p)
    if undefined_reason(y) is not None:
        return float("nan"), float("nan")
    lp = logit(p)
    ones = np.ones((y.size, 1))
    a = newton_logistic(ones, y, offset=lp)
    ab = newton_logistic(np.column_stack([ones[:, 0], lp]), y, offset=np.zeros_like(lp))
    intercept = float(a[0]) if a is not None else float("nan")
    slope = float(ab[1]) if ab is not None else float("nan")
    return intercept, slope


def ece(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """Expected calibration error over ``n_bins`` equal-mass bins (NaN for no patients)."""
    y, p = _as_arrays(y, p)
    if y.size == 0:
        return float("nan")
    order = np.argsort(p, kind="mergesort")
    total = 0.0
    for idx in np.array_split(order, min(n_bins, y.size)):
        total += idx.size * abs(y[idx].mean() - p[idx].mean())
    return float(total / y.size)


def reliability_curve(
    y: np.ndarray, p: np.ndarray, n_bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Equal-mass bins: (mean predicted, observed event rate, bin size) per bin."""
    y, p = _as_arrays(y, p)
    order = np.argsort(p, kind="mergesort")
    bins = [b for b in np.array_split(order, min(n_bins, max(y.size, 1))) if b.size]
    mean_p = np.array([p[b].mean() for b in bins])
    obs = np.array([y[b].mean() for b in bins])
    size = np.array([b.size for b in bins])
    return mean_p, obs, size


@dataclass(frozen=True)
class ThresholdRule:
    """How the operating threshold is chosen on the validation split.

    - ``youden``: maximise sensitivity + specificity - 1 (ties: the lowest threshold).
    - ``target_sensitivity``: the highest threshold whose sensitivity is >= ``value``.
    - ``fixed``: use ``value`` as the threshold.
    """

    method: Literal["youden", "target_sensitivity", "fixed"] = "youden"
    value: float = 0.5


def choose_threshold(y: np.ndarray, p: np.ndarray, rule: ThresholdRule | None = None) -> float:
    """Operating threshold from (validation) labels and probabilities; NaN if undefined."""
    rule = rule or ThresholdRule()
    if rule.method == "fixed":
        return float(rule.value)
    y, p = _as_arrays(y, p)
    if undefined_reason(y) is not None:
        return float("nan")
    # Candidate thresholds are the distinct scores; "positive iff p >= t".
    thresholds, tp, fp = _threshold_counts(y, p)
    sens = tp / y.sum()
    spec = 1.0 - fp / (y.size - y.sum())
    if rule.method == "youden":
        j = sens + spec - 1.0
        # Thresholds descend, so the last maximiser is the lowest threshold.
        best = np.flatnonzero(j == j.max())[-1]
        return float(thresholds[best])
    if rule.method == "target_sensitivity":
        ok = np.flatnonzero(sens >= rule.value)
        return float(thresholds[ok[0]]) if ok.size else float(thresholds[-1])
    raise ValueError(
        f"Unknown threshold method {rule.method!r}; use youden, target_sensitivity or fixed."
    )


def sensitivity_specificity(y: np.ndarray, p: np.ndarray, threshold: float) -> tuple[float, float]:
    """Sensitivity and specificity of "positive iff p >= threshold" (NaN where undefined)."""
    y, p = _as_arrays(y, p)
    if not np.isfinite(threshold):
        return float("nan"), float("nan")
    pred = p >= threshold
    pos, neg = y == 1, y == 0
    sens = float(pred[pos].mean()) if pos.any() else float("nan")
    spec = float((~pred[neg]).mean()) if neg.any() else float("nan")
    return sens, spec


def binary_metrics(
    y: np.ndarray, p: np.ndarray, threshold: float = float("nan"), n_bins: int = 10
) -> dict[str, float]:
    """All point metrics at once, keyed by their output column names."""
    intercept, slope = calibration_intercept_slope(y, p)
    sens, spec = sensitivity_specificity(y, p, threshold)
    return {
        "auroc": auroc(y, p),
        "auprc": average_precision(y, p),
        "brier": brier(y, p),
        "scaled_brier": scaled_brier(y, p),
        "cal_intercept": intercept,
        "cal_slope": slope,
        "ece": ece(y, p, n_bins),
        "threshold": float(threshold),
        "sensitivity": sens,
        "specificity": spec,
    }
