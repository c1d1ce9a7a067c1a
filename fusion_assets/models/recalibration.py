"""Recalibration of predicted probabilities on patients the model was not fitted on.

Every fitted model (any strategy, single-modality baselines included) carries a
:class:`Recalibration` in its ``FittedModel``, fitted on the validation split in the
held-out design and on the inner validation part of each training fold in
cross-validation; the deployed refit of a cross-validated cohort takes one fitted
on its fold models' out-of-fold predictions (``evaluation/refit.py``). It is
applied by ``FittedModel.predict_proba``, so scoring, stress tests, batch
re-evaluation and the MLflow pyfunc all see recalibrated probabilities.

- ``platt`` (default): logit p' = a + b · logit p, fitted by penalised maximum
  likelihood with a Gaussian prior centred on the identity (a = 0, b = 1) worth
  ``PRIOR_PATIENTS`` pseudo-patients like the validation ones: the fit lands
  about n / (n + PRIOR_PATIENTS) of the way from the identity to the unpenalised
  fit, so 25 validation patients move it a third of the way and 1,000 fit it
  freely. b is kept in (0, 1]: positive, so one model's ranking never changes,
  and at most 1, so it only tempers (``MAX_SLOPE`` says why).
- With fewer than ``min_events`` patients of either class among the validation
  patients, no recalibration is fitted (the identity, said in ``describe``): a
  handful of events cannot estimate a slope, and a noisy map per fold changes the
  pooled out-of-fold ranking and calibration for the worse.
- ``isotonic``: a monotone step function of p (scikit-learn's isotonic
  regression), for large cohorts; with few validation patients it overfits
  and ties many patients (AUROC can change), so it is an option, not the default.
- ``none``: probabilities as the model gives them.

Pure numpy / scikit-learn; saved as plain numbers in ``model.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Method = Literal["platt", "isotonic", "none"]
METHODS: tuple[str, ...] = ("platt", "isotonic", "none")

# The identity's prior in Platt scaling, in pseudo-patients: its precision is this
# many times the average per-patient Fisher information at the identity. Measured on
# the real cohorts (benchmarks/real_cohorts.py): a per-patient prior of weight 1 let
# 20-31 inner-validation patients per fold fit noisy maps that made the pooled
# out-of-fold calibration slope worse (ischemic_stroke); 50 keeps small folds near the
# identity and still lets a few hundred patients correct the model.
PRIOR_PATIENTS = 50.0
# Fewer patients than this in the smaller class: no recalibration (identity). 5 keeps
# the breast cancer cohort's folds (about 8 events among 32 inner-validation patients)
# recalibrated, under the prior above; fewer cannot say anything about a slope.
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
    f"default, with a prior on the identity worth {PRIOR_PATIENTS:.0f} patients (a few dozen "
    "validation patients move it a fraction of the way) and b kept in (0, 1] (it only "
    "tempers; ranking within a model unchanged). With fewer than "
    f"{MIN_EVENTS_PER_CLASS} validation patients of either class (the default of "
    "recalibration_min_events) the model is left uncalibrated; its log says so."
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


def fit_recalibration(
    prob: np.ndarray,
    labels: np.ndarray,
    method: str,
    min_events: int = MIN_EVENTS_PER_CLASS,
    prior_patients: float = PRIOR_PATIENTS,
) -> Recalibration:
    """Fit ``method`` on held-out probabilities and labels.

    With no held-out patients, or fewer than ``min_events`` of either class among
    them, the identity is returned (a model still predicts, uncorrected), with the
    reason in ``skipped``.
    """
    if method not in METHODS:
        raise ValueError(f"Unknown recalibration {method!r}; expected one of {METHODS}.")
    prob = np.asarray(prob, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    keep = np.isfinite(prob)
    prob, labels = prob[keep], labels[keep]
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
    if method == "isotonic":
        knots_in, knots_out = fit_isotonic(prob, labels)
        return Recalibration("isotonic", knots_in=knots_in, knots_out=knots_out, n=n, events=events)
    a, b = fit_platt(prob, labels, prior_patients)
    return Recalibration("platt", intercept=a, slope=b, n=n, events=events)
