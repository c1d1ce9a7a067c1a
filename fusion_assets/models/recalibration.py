"""Recalibration of predicted probabilities on patients the model was not fitted on.

Every fitted model (any strategy, single-modality baselines included) carries a
:class:`Recalibration` in its ``FittedModel``, fitted on the validation split in the
held-out design and on the inner validation part of each training fold in
cross-validation; the deployed refit of a cross-validated cohort takes one fitted
on its fold models' out-of-fold predictions (``evaluation/refit.py``). It is
applied by ``FittedModel.predict_proba``, so scoring, stress tests, batch
re-evaluation and the MLflow pyfunc all see recalibrated probabilities.

- ``platt`` (default): logit p' = a + b · logit p, fitted by penalised maximum
  likelihood with a Gaussian prior on the identity (a = 0, b = 1) worth
  ``PRIOR_PATIENTS`` patient(s) at the data's own fit (a fit lands about
  n / (n + PRIOR_PATIENTS) of the way from the identity), b kept in (0, 1]:
  positive, so one model's ranking never changes, and at most 1, so it only
  tempers (``MAX_SLOPE`` says why).
- **Gate: a map is kept only where it has earned it.** It must beat the identity's
  log loss by one standard error when cross-validated on the validation patients
  themselves (``cross_validated_gain``), and there must be at least ``min_events``
  of each class; otherwise the model keeps its own probabilities and
  ``describe`` says why. Nothing is pooled across cross-validation folds (fold
  k's inner-validation patients are other folds' test patients), so a 25-patient
  inner validation split mostly keeps the identity and a large one recalibrates.
- ``isotonic``: a monotone step function of p (scikit-learn's isotonic
  regression), for large cohorts; with few validation patients it overfits
  and ties many patients (AUROC can change), so it is an option, not the default.
- ``none``: probabilities as the model gives them.

Pure numpy / scikit-learn; saved as plain numbers in ``model.json``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

Method = Literal["platt", "isotonic", "none"]
METHODS: tuple[str, ...] = ("platt", "isotonic", "none")

# Most folds of the gate's cross-validation (leave-one-out up to this many patients).
# Measured on the real cohorts (benchmarks/real_cohorts.py, offline on the fold models'
# raw predictions, 7 strategies x 2 cohorts): ungated per-fold Platt maps on 20-31
# inner-validation patients moved pooled out-of-fold AUROCs by up to -0.020 (breast_cancer
# early) and flattened slopes (ischemic_stroke intermediate 0.23 -> 0.11); gated, the
# worst AUROC change was -0.001, no slope moved away from 1, and the reference's slope
# improved on both cohorts (0.54 -> 0.65, 0.30 -> 0.41).
GATE_FOLDS = 200
# The identity's prior in Platt scaling, in patients: its precision is this many times
# the mean per-patient information at the data's own fit. The gate does the protecting;
# priors worth 10 or 50 patients kept less of the slope correction where a map passed it.
PRIOR_PATIENTS = 1.0
# Fewer patients than this in the smaller class: no recalibration (identity). 5 keeps
# the breast cancer cohort's folds (about 8 events among 32 inner-validation patients)
# open to the gate; fewer cannot say anything about a slope.
MIN_EVENTS_PER_CLASS = 5
# A slope kept at least this positive: a recalibration never reverses the ranking.
MIN_SLOPE = 0.05
# ... and at most 1: it only tempers. The validation patients also chose the model (its
# early-stopping epoch, late fusion's stack), so they flatter it; a slope above 1 fitted
# on them is mostly that optimism, and sharpening on it made the out-of-fold slopes
# worse on the real cohorts (ischemic_stroke intermediate 0.23 -> 0.14).
MAX_SLOPE = 1.0
# Probabilities clipped into [EPS, 1 - EPS] before taking logits (far enough out that
# models' own clipping, 1e-7, is kept), isotonic output into [ISOTONIC_EPS, 1 - ISOTONIC_EPS]
# (a step at exactly 0 or 1 would make the calibration slope infinite).
EPS = 1e-9
ISOTONIC_EPS = 1e-3

# The report's definition (evaluation designs add it to their methods).
METHOD_NOTE = (
    "Recalibration: each model's probabilities are recalibrated on patients it was not "
    "fitted on (the validation split; in cross-validation the inner validation part of each "
    "training fold, never pooled across folds). Platt scaling logit p' = a + b·logit p by "
    "default, b kept in (0, 1] (it only tempers; ranking within a model unchanged). A map "
    "is kept only if it beats the uncalibrated probabilities' log loss by one standard "
    "error when cross-validated (leave-one-out) on those same validation patients, and "
    f"only with at least {MIN_EVENTS_PER_CLASS} validation patients of each class (the "
    "default of recalibration_min_events); otherwise the model keeps its own probabilities "
    "and its log says why. Small validation splits therefore mostly keep the identity."
)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -500.0, 500.0)))


@dataclass(frozen=True)
class Recalibration:
    """A fitted map from a model's probabilities to recalibrated ones."""

    method: str = "none"
    intercept: float = 0.0  # platt: a
    slope: float = 1.0  # platt: b
    # isotonic: the step function's knots (probability in, probability out)
    knots_in: tuple[float, ...] = field(default=())
    knots_out: tuple[float, ...] = field(default=())
    n: int = 0  # patients it was fitted on
    events: int = 0
    skipped: str = ""  # why no recalibration was fitted (too few events), else ""

    def apply(self, prob: np.ndarray) -> np.ndarray:
        """Recalibrated probabilities, float64, same shape as ``prob``."""
        prob = np.asarray(prob, dtype=np.float64)
        if self.method == "platt":
            return _sigmoid(self.intercept + self.slope * _logit(prob))
        if self.method == "isotonic" and self.knots_in:
            return np.interp(prob, self.knots_in, self.knots_out)
        return prob

    def describe(self) -> str:
        """One phrase for logs and reports."""
        if self.method == "platt":
            return (
                f"Platt (logistic) recalibration a = {self.intercept:+.2f}, b = {self.slope:.2f} "
                f"fitted on {self.n} held-out patients ({self.events} events)"
            )
        if self.method == "isotonic":
            return f"isotonic recalibration fitted on {self.n} held-out patients ({self.events} events)"
        if self.skipped:
            return f"no recalibration ({self.skipped})"
        return "no recalibration"

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "intercept": float(self.intercept),
            "slope": float(self.slope),
            "knots_in": [float(x) for x in self.knots_in],
            "knots_out": [float(x) for x in self.knots_out],
            "n": int(self.n),
            "events": int(self.events),
            "skipped": self.skipped,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Recalibration:
        if not data:
            return cls()
        return cls(
            method=str(data.get("method", "none")),
            intercept=float(data.get("intercept", 0.0)),
            slope=float(data.get("slope", 1.0)),
            knots_in=tuple(data.get("knots_in", ())),
            knots_out=tuple(data.get("knots_out", ())),
            n=int(data.get("n", 0)),
            events=int(data.get("events", 0)),
            skipped=str(data.get("skipped", "")),
        )


IDENTITY = Recalibration()


def _penalised_newton(
    design: np.ndarray, offset: np.ndarray, y: np.ndarray, prior: np.ndarray, penalty: np.ndarray
) -> np.ndarray:
    """argmin of the logistic NLL of logit = offset + design @ theta plus the Gaussian
    penalty ½ (theta - prior)ᵀ penalty (theta - prior); damped Newton from the prior."""

    def objective(theta: np.ndarray) -> float:
        z = offset + design @ theta
        nll = np.sum(np.logaddexp(0.0, z) - y * z)
        return float(nll + 0.5 * (theta - prior) @ penalty @ (theta - prior))

    theta = prior.copy()
    for _ in range(100):
        p = _sigmoid(offset + design @ theta)
        grad = design.T @ (p - y) + penalty @ (theta - prior)
        hess = (design * (p * (1 - p))[:, None]).T @ design + penalty
        step = np.linalg.solve(hess, grad)
        # step halving: Newton on a logistic likelihood can overshoot from the identity
        current, scale = objective(theta), 1.0
        while scale > 1e-6 and objective(theta - scale * step) > current:
            scale /= 2
        theta = theta - scale * step
        if np.abs(scale * step).max() < 1e-9:
            break
    return theta


def fit_platt(
    prob: np.ndarray, labels: np.ndarray, prior_patients: float = PRIOR_PATIENTS
) -> tuple[float, float]:
    """(a, b) of logit P(y) = a + b · logit p, penalised toward (0, 1) by a prior worth
    ``prior_patients`` patients, b within [MIN_SLOPE, MAX_SLOPE] (a refitted at the bound)."""
    x = _logit(prob)
    y = np.asarray(labels, dtype=np.float64)
    design = np.column_stack([np.ones_like(x), x])
    prior = np.array([0.0, 1.0])
    # The prior's precision is prior_patients x the mean per-patient information of
    # (a, b) at the data's own fit, so the penalised fit lands about n / (n + prior_patients)
    # of the way from the identity to it. That fit is found first under a prior worth one
    # patient at the prevalence (it stays finite when a few patients are separable).
    rate = float(np.clip(y.mean(), 0.01, 0.99)) if len(y) else 0.5
    scale = rate * (1 - rate) * design.T @ design / max(len(x), 1) + 1e-8 * np.eye(2)
    own = _penalised_newton(design, np.zeros_like(x), y, prior, scale)
    p_own = _sigmoid(design @ own)
    information = (design * (p_own * (1 - p_own))[:, None]).T @ design / max(len(x), 1)
    penalty = prior_patients * information + 1e-8 * np.eye(2)
    a, b = _penalised_newton(design, np.zeros_like(x), y, prior, penalty)
    if MIN_SLOPE <= b <= MAX_SLOPE:
        return float(a), float(b)
    b = min(max(b, MIN_SLOPE), MAX_SLOPE)
    (a,) = _penalised_newton(design[:, :1], b * x, y, prior[:1], penalty[:1, :1])
    return float(a), float(b)


def fit_isotonic(prob: np.ndarray, labels: np.ndarray) -> tuple[tuple[float, ...], ...]:
    """Knots (in, out) of the isotonic regression of the labels on the probabilities."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(
        y_min=ISOTONIC_EPS, y_max=1 - ISOTONIC_EPS, increasing=True, out_of_bounds="clip"
    )
    iso.fit(np.asarray(prob, dtype=np.float64), np.asarray(labels, dtype=np.float64))
    return tuple(iso.X_thresholds_.tolist()), tuple(iso.y_thresholds_.tolist())


def _log_loss(prob: np.ndarray, labels: np.ndarray) -> np.ndarray:
    prob = np.clip(prob, EPS, 1 - EPS)
    return -(labels * np.log(prob) + (1 - labels) * np.log(1 - prob))


def cross_validated_gain(
    prob: np.ndarray,
    labels: np.ndarray,
    fit: Callable[[np.ndarray, np.ndarray], Recalibration],
    groups: np.ndarray | None = None,
) -> tuple[float, float]:
    """(mean, standard error) of the per-patient log-loss gain of ``fit`` over the identity,
    each patient recalibrated by a map fitted without it: leave-one-out up to
    ``GATE_FOLDS`` patients, that many folds above (stratified by label in a fixed order:
    the same patients give the same answer). ``groups`` (e.g. patient ids of rows from
    several repeats) keeps each group's rows in one fold."""
    if groups is None:
        groups = np.arange(len(labels))
    unique, group_of = np.unique(np.asarray(groups), return_inverse=True)
    group_label = np.zeros(len(unique))
    np.maximum.at(group_label, group_of, labels)
    folds = min(len(unique), GATE_FOLDS)
    group_fold = np.empty(len(unique), dtype=np.int64)
    group_fold[np.argsort(group_label, kind="stable")] = np.arange(len(unique)) % folds
    fold = group_fold[group_of]
    gain = np.empty(len(labels))
    for k in range(folds):
        out = fold == k
        if out.any():
            mapped = fit(prob[~out], labels[~out]).apply(prob[out])
            gain[out] = _log_loss(prob[out], labels[out]) - _log_loss(mapped, labels[out])
    return float(gain.mean()), float(gain.std(ddof=1) / np.sqrt(len(gain)))


def fit_recalibration(
    prob: np.ndarray,
    labels: np.ndarray,
    method: str,
    min_events: int = MIN_EVENTS_PER_CLASS,
    prior_patients: float = PRIOR_PATIENTS,
    groups: np.ndarray | None = None,
) -> Recalibration:
    """Fit ``method`` on held-out probabilities and labels.

    With no held-out patients, fewer than ``min_events`` of either class among them,
    or a map that does not beat the identity by a standard error when
    cross-validated on them (``cross_validated_gain``), the identity is returned (a
    model still predicts, uncorrected), with the reason in ``skipped``.
    """
    if method not in METHODS:
        raise ValueError(f"Unknown recalibration {method!r}; expected one of {METHODS}.")
    prob = np.asarray(prob, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    keep = np.isfinite(prob)
    prob, labels = prob[keep], labels[keep]
    groups = None if groups is None else np.asarray(groups)[keep]
    n, events = len(labels), int(labels.sum())
    if method == "none" or n == 0:
        return Recalibration(n=n, events=events)
    smaller = min(events, n - events)
    if smaller < max(min_events, 1):
        why = (
            f"{smaller} patient(s) in the smaller class among {n} held-out patients, "
            f"fewer than the {min_events} needed"
        )
        return Recalibration(n=n, events=events, skipped=why)

    def fit(p: np.ndarray, y: np.ndarray) -> Recalibration:
        if method == "isotonic":
            knots_in, knots_out = fit_isotonic(p, y)
            return Recalibration("isotonic", knots_in=knots_in, knots_out=knots_out)
        a, b = fit_platt(p, y, prior_patients)
        return Recalibration("platt", intercept=a, slope=b)

    gain, se = cross_validated_gain(prob, labels, fit, groups)
    if gain <= se:
        why = (
            f"it did not beat the identity on {n} held-out patients ({events} events) by a "
            f"standard error when cross-validated: log-loss gain {gain:+.3f} ± {se:.3f}"
        )
        return Recalibration(n=n, events=events, skipped=why)
    return replace(fit(prob, labels), n=n, events=events)
