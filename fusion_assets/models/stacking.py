"""Late fusion's stacker, shrunk toward the best single modality (torch, no dagster).

Late fusion predicts logit p = b + Σ_{m present} (w_m · logit_m + c_m) over the
unimodal models' logits. The stacking parameters are fitted on validation
patients only (the unimodal models never saw them), with a ridge penalty
toward the *best single modality chosen on those patients*: w = e_best, c = 0.
The penalty's strength is chosen by repeated cross-validation on the validation
patients among ``late_l2 × L2_GRID``, whose last entry (infinity) *is* the best
single modality, with the one-standard-error rule: the strongest shrinkage whose
held-out loss is within a standard error of the lowest. So on a small or noisy validation split the stacker falls
back to the best modality rather than to an over-fitted blend, and fused ends
below its best part only when the validation patients chose wrongly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fusion_assets.metrics.classification import auroc

# Multiples of FusionConfig.late_l2 tried by cross-validation; inf = the best modality alone.
L2_GRID = (1.0, 4.0, 16.0, 64.0, math.inf)
INNER_FOLDS = 5
# Fold assignments averaged: one 5-fold split of 20-30 validation patients picks the
# penalty by noise (late fell below its best modality on breast_cancer).
INNER_REPEATS = 3


@dataclass(frozen=True)
class Stack:
    """Fitted stacking parameters and how they were chosen."""

    weight: np.ndarray  # [M]
    shift: np.ndarray  # [M]
    bias: float
    toward: int  # index of the best single modality (the shrinkage target)
    l2: float  # the chosen penalty (inf: the best modality alone)


def best_modality(logits: np.ndarray, y: np.ndarray) -> int:
    """Index of the unimodal model with the highest AUROC over every validation patient
    (its prior where it has no data, as the report scores single modalities)."""
    scores = [auroc(y, logits[:, j]) for j in range(logits.shape[1])]
    finite = [s if np.isfinite(s) else -1.0 for s in scores]
    return int(np.argmax(finite)) if finite else 0


def fit_stack(
    logits: np.ndarray, present: np.ndarray, y: np.ndarray, toward: int, l2: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """(w, c, b) by penalised likelihood (LBFGS); ``l2 = inf`` keeps w = e_toward, c = 0."""
    n_mod = logits.shape[1]
    z_in = torch.from_numpy(np.asarray(logits, dtype=np.float64))
    on = torch.from_numpy(np.asarray(present, dtype=np.float64))
    target = torch.zeros(n_mod, dtype=torch.float64)
    if n_mod:
        target[toward] = 1.0
    weight = target.clone().requires_grad_(math.isfinite(l2))
    shift = torch.zeros(n_mod, dtype=torch.float64, requires_grad=math.isfinite(l2))
    p = min(max(float(np.mean(y)) if len(y) else 0.5, 1e-4), 1 - 1e-4)
    bias = torch.tensor(math.log(p / (1 - p)), dtype=torch.float64, requires_grad=True)
    params = [bias] + ([weight, shift] if math.isfinite(l2) else [])
    yt = torch.from_numpy(np.asarray(y, dtype=np.float64))
    optimizer = torch.optim.LBFGS(params, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        z = bias + ((weight * z_in + shift) * on).sum(1)
        loss = nn.functional.binary_cross_entropy_with_logits(z, yt, reduction="sum")
        if math.isfinite(l2):
            loss = loss + 0.5 * l2 * (((weight - target) ** 2).sum() + (shift**2).sum())
        loss.backward()
        return loss

    if len(y):
        optimizer.step(closure)
    return weight.detach().numpy(), shift.detach().numpy(), float(bias.detach())


def _combine(logits, present, weight, shift, bias) -> np.ndarray:
    return bias + ((weight * logits + shift) * present).sum(1)


def _held_out_losses(
    logits: np.ndarray, present: np.ndarray, y: np.ndarray, toward: int, l2: float, seed: int
) -> np.ndarray:
    """Per-patient log loss of the stack fitted with ``l2``, each patient predicted by
    the inner folds that left it out, averaged over ``INNER_REPEATS`` fold assignments."""
    losses = np.zeros(len(y))
    for repeat in range(INNER_REPEATS):
        rng = np.random.default_rng([seed, repeat])
        fold = np.empty(len(y), dtype=np.int64)
        for label in (0, 1):
            rows = rng.permutation(np.flatnonzero(y == label))
            fold[rows] = np.arange(len(rows)) % INNER_FOLDS
        for k in range(INNER_FOLDS):
            fit, test = fold != k, fold == k
            w, c, b = fit_stack(logits[fit], present[fit], y[fit], toward, l2)
            z = torch.from_numpy(_combine(logits[test], present[test], w, c, b))
            target = torch.from_numpy(y[test].astype(np.float64))
            losses[test] += nn.functional.binary_cross_entropy_with_logits(
                z, target, reduction="none"
            ).numpy()
    return losses / INNER_REPEATS


def one_standard_error_choice(grid: list[float], losses: list[np.ndarray]) -> float:
    """The strongest penalty whose mean held-out loss is within one (paired) standard
    error of the lowest: a blend must beat the shrunk one clearly, not by noise."""
    means = [float(np.mean(loss)) for loss in losses]
    best = int(np.argmin(means))
    for l2, loss in reversed(list(zip(grid, losses, strict=True))):
        diff = loss - losses[best]
        se = float(np.std(diff, ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
        if float(np.mean(diff)) <= se + 1e-9:
            return l2
    return grid[best]


def choose_stack(
    logits: np.ndarray, present: np.ndarray, y: np.ndarray, base_l2: float, seed: int = 0
) -> Stack:
    """The stack toward the best modality, its penalty chosen by repeated inner
    cross-validation with the one-standard-error rule (ties and near-ties go to the
    stronger shrinkage, infinity being the best modality alone).

    With fewer than ``INNER_FOLDS`` patients of a class there is nothing to
    cross-validate: the penalty is ``base_l2`` (the configured one), as before.
    """
    y = np.asarray(y, dtype=np.float64)
    present = np.asarray(present, dtype=np.float64)
    toward = best_modality(logits, y)
    events = int(y.sum())
    if min(events, len(y) - events) < INNER_FOLDS:
        l2 = base_l2
    else:
        grid = [base_l2 * g for g in L2_GRID]
        losses = [_held_out_losses(logits, present, y, toward, l2, seed) for l2 in grid]
        l2 = one_standard_error_choice(grid, losses)
    w, c, b = fit_stack(logits, present, y, toward, l2)
    return Stack(w, c, b, toward, l2)
