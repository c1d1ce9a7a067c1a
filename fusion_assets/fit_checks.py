"""What a fit must show before it becomes a registered model version (pure code: no dagster).

Three rules, run on every fit of ``modality_encoder`` and ``fused_model`` by the fit
itself (``assets/training_run.py``), as blocking Dagster asset checks:

- ``validation_auroc_is_finite``: the held-out AUROC (the validation patients', or in
  cross-validation mode the fold models' out-of-fold AUROC) is a number: a validation
  split of one class, or a model that outputs NaN, gives none.
- ``trained_at_least_one_epoch``: a torch module was trained for at least one epoch
  (models solved or boosted in one call — late fusion's stacking, the references — pass
  and say how they were fitted).
- ``not_worse_than_best_single_modality`` (fused models only): the held-out AUROC is at
  most ``max_below`` under the best single modality's on the same patients (a unimodal
  model scores every patient, its prior where the modality is absent, as the report
  scores single modalities), or within the noise of that comparison when the held-out
  patients are few: the allowance is ``max(max_below, NOISE_Z × SE)`` (one-sided 99 %), SE of the
  difference of two AUROCs on those patients (Hanley & McNeil, taken as independent,
  which overstates it a little). A weak strategy on 180 patients is a finding for the
  report, not a broken fit; on 5,000 patients the margin decides. A negative
  ``max_below`` (the fused model must beat the best single modality by that much) is
  applied as given.

A fit that fails one is logged to MLflow (its run tagged ``fusion.fit_checks = failed``,
status FAILED) but never registered, so nothing downstream (predictions, promotion,
re-evaluation, scoring) can load it; the step fails and the run's downstream steps are
skipped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# A gap inside this many standard errors is not evidence of a broken fit: one-sided 99 %.
# A false alarm stops a whole retraining; a weak strategy let through is still measured on
# the test patients by the report, and promotion needs held-out evidence to pick it
NOISE_Z = 2.33
FINITE_AUROC = "validation_auroc_is_finite"
AT_LEAST_ONE_EPOCH = "trained_at_least_one_epoch"
NOT_WORSE_THAN_SINGLE = "not_worse_than_best_single_modality"
ENCODER_CHECKS = (FINITE_AUROC, AT_LEAST_ONE_EPOCH)
FUSION_CHECKS = (FINITE_AUROC, AT_LEAST_ONE_EPOCH, NOT_WORSE_THAN_SINGLE)

DESCRIPTIONS = {
    FINITE_AUROC: "The fit's held-out AUROC (validation patients, or the fold models' "
    "out-of-fold predictions in cross-validation mode) is finite.",
    AT_LEAST_ONE_EPOCH: "A torch model trained for at least one epoch (models fitted in one "
    "call, such as late fusion's stacking or the references, say how they were fitted).",
    NOT_WORSE_THAN_SINGLE: "The fused model's held-out AUROC is not below the best single "
    "modality's on the same patients by more than the run config's "
    "max_auroc_below_best_single.",
}


@dataclass(frozen=True)
class FitCheck:
    """One rule's outcome on one fit."""

    name: str
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FitEvidence:
    """What the rules read from a fit."""

    auroc: float  # the held-out AUROC
    auroc_source: str  # where it comes from, in words
    iterative: bool  # a torch module trained over epochs
    epochs: int  # epochs trained (0 for a fit in one call)
    fitted_by: str  # how it was fitted, in words
    n_events: int | None = None  # held-out patients with / without the label (None: unknown)
    n_non_events: int | None = None


def auroc_standard_error(auroc: float, n_events: int, n_non_events: int) -> float:
    """Hanley & McNeil (1982) standard error of an AUROC from the class sizes."""
    if n_events < 1 or n_non_events < 1 or not math.isfinite(auroc):
        return math.inf
    q1, q2 = auroc / (2 - auroc), 2 * auroc**2 / (1 + auroc)
    variance = (
        auroc * (1 - auroc)
        + (n_events - 1) * (q1 - auroc**2)
        + (n_non_events - 1) * (q2 - auroc**2)
    ) / (n_events * n_non_events)
    return math.sqrt(max(variance, 0.0))


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def check_fit(
    evidence: FitEvidence,
    single_aurocs: Mapping[str, float] | None = None,
    max_below: float | None = None,
) -> list[FitCheck]:
    """The rules on one fit; the single-modality rule only with ``single_aurocs``."""
    checks = [
        FitCheck(
            FINITE_AUROC,
            _finite(evidence.auroc),
            f"{evidence.auroc_source}: {evidence.auroc:.3f}"
            if _finite(evidence.auroc)
            else f"{evidence.auroc_source} is not a number: one class only among the held-out "
            "patients, or the model outputs NaN; the fit is not registered",
            {"auroc": float(evidence.auroc), "source": evidence.auroc_source},
        ),
        FitCheck(
            AT_LEAST_ONE_EPOCH,
            evidence.epochs >= 1 or not evidence.iterative,
            (
                f"{evidence.fitted_by}"
                if evidence.epochs >= 1 or not evidence.iterative
                else f"no epoch was trained ({evidence.fitted_by}); the fit is not registered"
            ),
            {"epochs": int(evidence.epochs), "iterative": evidence.iterative},
        ),
    ]
    if single_aurocs is not None:
        checks.append(_versus_single(evidence, single_aurocs, max_below or 0.0))
    return checks


def _versus_single(
    evidence: FitEvidence, single_aurocs: Mapping[str, float], max_below: float
) -> FitCheck:
    finite = {m: float(a) for m, a in single_aurocs.items() if _finite(a)}
    metadata: dict[str, Any] = {
        "single_modality_auroc": {m: round(a, 4) for m, a in single_aurocs.items()},
        "max_auroc_below_best_single": max_below,
    }
    if not finite:
        return FitCheck(
            NOT_WORSE_THAN_SINGLE,
            True,
            "no single modality has a finite held-out AUROC: nothing to compare with",
            metadata,
        )
    best = max(finite, key=finite.__getitem__)
    noise = 0.0
    if evidence.n_events is not None and evidence.n_non_events is not None:
        se = math.hypot(
            auroc_standard_error(evidence.auroc, evidence.n_events, evidence.n_non_events),
            auroc_standard_error(finite[best], evidence.n_events, evidence.n_non_events),
        )
        noise = NOISE_Z * se
        metadata.update(n_events=evidence.n_events, n_non_events=evidence.n_non_events)
    # a negative margin demands a gain: the user's rule, not relaxed by the noise
    allowance = max_below if max_below < 0 else max(max_below, noise)
    floor = finite[best] - allowance
    passed = _finite(evidence.auroc) and evidence.auroc >= floor
    metadata.update(
        best_single=best,
        best_single_auroc=finite[best],
        noise_allowance=noise,
        floor=floor,
    )
    why = (
        f"minus {max_below:g}"
        if allowance == max_below
        else f"minus {allowance:.3f}, {NOISE_Z} standard errors of the difference on "
        f"{evidence.n_events} events / {evidence.n_non_events} non-events, above the "
        f"margin {max_below:g}"
    )
    verdict = "at or above" if passed else "below"
    return FitCheck(
        NOT_WORSE_THAN_SINGLE,
        bool(passed),
        f"held-out AUROC {evidence.auroc:.3f} is {verdict} {floor:.3f} (the best single "
        f"modality, {best}, {finite[best]:.3f}, {why})"
        + ("" if passed else "; the fit is not registered"),
        metadata,
    )


def single_modality_aurocs(
    encoders: Mapping[str, Any], frames: Mapping[str, Any], labels: Any, patient_ids: list[str]
) -> dict[str, float]:
    """Each fitted unimodal model's AUROC on ``patient_ids`` (its prior where absent)."""
    from fusion_assets.metrics.classification import auroc
    from fusion_assets.models.training import label_vector

    y = label_vector(labels, patient_ids)
    return {
        m: float(auroc(y, model.predict_proba(model.prepare(dict(frames), patient_ids))))
        for m, model in encoders.items()
    }
