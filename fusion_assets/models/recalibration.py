"""Recalibration of predicted probabilities on patients the model was not fitted on.

Every fitted model (any strategy, single-modality baselines included) carries a
:class:`Recalibration` in its ``FittedModel``, fitted on the validation split in the
held-out design and on the inner validation part of each training fold in
cross-validation; the deployed refit of a cross-validated cohort takes one fitted
on its fold models' out-of-fold predictions (``evaluation/refit.py``). It is
applied by ``FittedModel.predict_proba``, so scoring, stress tests, batch
re-evaluation and the MLflow pyfunc all see recalibrated probabilities.

- ``platt`` (default): logit p' = a + b · logit p, fitted by penalised maximum
  likelihood with a Gaussian prior centred on the identity (a = 0, b = 1; weight
  ``PRIOR_WEIGHT``), so a few dozen validation patients move it only as far as
  they support; b is kept positive, so the ranking (AUROC) never changes.
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

# Prior weight of the identity in Platt scaling (ridge on a and b - 1): about one
# patient's worth of information, negligible past a hundred validation patients.
PRIOR_WEIGHT = 1.0
# A slope kept at least this positive: a recalibration never reverses the ranking.
MIN_SLOPE = 0.05
# Probabilities clipped into [EPS, 1 - EPS] before taking logits (far enough out that
# models' own clipping, 1e-7, is kept), isotonic output into [ISOTONIC_EPS, 1 - ISOTONIC_EPS]
# (a step at exactly 0 or 1 would make the calibration slope infinite).
EPS = 1e-9
ISOTONIC_EPS = 1e-3


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
        )


IDENTITY = Recalibration()


def fit_platt(
    prob: np.ndarray, labels: np.ndarray, prior_weight: float = PRIOR_WEIGHT
) -> tuple[float, float]:
    """(a, b) of logit P(y) = a + b · logit p, ridge-penalised toward (0, 1); damped Newton."""
    x = _logit(prob)
    y = np.asarray(labels, dtype=np.float64)
    design = np.column_stack([np.ones_like(x), x])
    prior = np.array([0.0, 1.0])
    # a tiny extra ridge keeps the Newton system solvable when the prior weight is 0
    penalty = (prior_weight + 1e-8) * np.eye(2)

    def objective(theta: np.ndarray) -> float:
        z = design @ theta
        nll = np.sum(np.logaddexp(0.0, z) - y * z)
        return float(nll + 0.5 * (theta - prior) @ penalty @ (theta - prior))

    theta = prior.copy()
    for _ in range(100):
        p = _sigmoid(design @ theta)
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
    return float(theta[0]), float(max(theta[1], MIN_SLOPE))


def fit_isotonic(prob: np.ndarray, labels: np.ndarray) -> tuple[tuple[float, ...], ...]:
    """Knots (in, out) of the isotonic regression of the labels on the probabilities."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(
        y_min=ISOTONIC_EPS, y_max=1 - ISOTONIC_EPS, increasing=True, out_of_bounds="clip"
    )
    iso.fit(np.asarray(prob, dtype=np.float64), np.asarray(labels, dtype=np.float64))
    return tuple(iso.X_thresholds_.tolist()), tuple(iso.y_thresholds_.tolist())


def fit_recalibration(prob: np.ndarray, labels: np.ndarray, method: str) -> Recalibration:
    """Fit ``method`` on held-out probabilities and labels.

    With no held-out patients, or only one class among them, there is nothing to
    fit and the identity is returned (a model still predicts, uncorrected).
    """
    if method not in METHODS:
        raise ValueError(f"Unknown recalibration {method!r}; expected one of {METHODS}.")
    prob = np.asarray(prob, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    keep = np.isfinite(prob)
    prob, labels = prob[keep], labels[keep]
    n, events = len(labels), int(labels.sum())
    if method == "none" or n == 0 or events in (0, n):
        return Recalibration(n=n, events=events)
    if method == "isotonic":
        knots_in, knots_out = fit_isotonic(prob, labels)
        return Recalibration("isotonic", knots_in=knots_in, knots_out=knots_out, n=n, events=events)
    a, b = fit_platt(prob, labels)
    return Recalibration("platt", intercept=a, slope=b, n=n, events=events)
