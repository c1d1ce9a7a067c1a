"""Synthetic evaluation inputs with a known answer, for tests and the benchmark.

Not the cohort generator (that lives in ``fusion_assets/cohorts``): this only
fabricates *predictions* in the shapes the evaluation stage receives, so the
maths can be exercised without training anything.

Generative model: each modality m carries evidence x_m ~ N(mu_m * (2y - 1), 1)
when present. The oracle log-odds are the prior log-odds plus sum over present
modalities of 2 mu_m x_m (the exact posterior under this model), so the oracle
AUROC is the ceiling. Each strategy sees the same evidence with its own extra
noise and its own penalty for absent modalities (early fusion's zero-filling is
modelled as extra noise per absent modality).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fusion_assets.metrics.degradation import random_modality_masks

MODALITIES = ("ehr", "genomics", "imaging", "wearables", "notes")
AVAILABILITY = (0.98, 0.35, 0.45, 0.25, 0.85)
SIGNAL = (0.45, 0.35, 0.40, 0.25, 0.30)
# Strategy: (extra noise sd, extra noise sd per absent modality).
STRATEGIES = {
    "early": (0.35, 0.45),
    "intermediate": (0.40, 0.15),
    "late": (0.45, 0.0),
    "attention": (0.40, 0.10),
    "reference": (0.50, 0.05),
}
RATES = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9)


@dataclass
class SyntheticEvaluationInputs:
    predictions: pd.DataFrame
    patients: pd.DataFrame
    degradation_predictions: pd.DataFrame
    recommendation: list[dict[str, str]]
    modalities: tuple[str, ...] = MODALITIES


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _strategy_prob(
    x: np.ndarray,
    present: np.ndarray,
    prior_logit: float,
    noise: np.ndarray,
    absent_noise: np.ndarray,
    penalty: float,
) -> np.ndarray:
    mu = np.asarray(SIGNAL)
    z = prior_logit + np.sum(np.where(present, 2 * mu * x, 0.0), axis=1)
    n_absent = (~present).sum(axis=1)
    return _sigmoid(z + noise + penalty * np.sqrt(n_absent) * absent_noise)


def simulate_inputs(
    n_test: int = 2000,
    n_validation: int = 1000,
    prevalence: float = 0.2,
    seed: int = 0,
    n_mask_seeds: int = 5,
    rates: tuple[float, ...] = RATES,
    with_degradation: bool = True,
    stress_strategies: tuple[str, ...] | None = None,
) -> SyntheticEvaluationInputs:
    """Predictions, patients and stress-test predictions for a synthetic cohort."""
    rng = np.random.default_rng(seed)
    n = n_test + n_validation
    m = len(MODALITIES)
    y = (rng.random(n) < prevalence).astype(np.int64)
    present = rng.random((n, m)) < np.asarray(AVAILABILITY)
    # Age drives wearables availability (MAR-like) so subgroups differ in mix.
    age = np.clip(rng.normal(58, 15, n), 18, 95).round().astype(int)
    present[:, 3] &= rng.random(n) < np.where(age < 65, 1.0, 0.4)
    x = rng.normal(np.asarray(SIGNAL) * (2 * y[:, None] - 1), 1.0)
    prior_logit = float(np.log(prevalence / (1 - prevalence)))
    oracle = _sigmoid(prior_logit + np.sum(np.where(present, 2 * np.asarray(SIGNAL) * x, 0.0), 1))
    pattern = np.array(
        [
            "+".join(name for name, has in zip(MODALITIES, row, strict=True) if has) or "none"
            for row in present
        ],
        dtype=object,
    )
    ids = np.array([f"P{i:06d}" for i in range(n)], dtype=object)
    split = np.where(np.arange(n) < n_test, "test", "validation")
    patients = pd.DataFrame(
        {
            "patient_id": ids,
            "label": y,
            "sex": rng.choice(["F", "M"], n),
            "age": age,
            "site": rng.choice(["site_a", "site_b", "site_c", "site_d"], n, p=[0.4, 0.3, 0.2, 0.1]),
            "pattern": pattern,
            "oracle_prob": oracle,
        }
    )
    frames = []
    noises = {}
    for s, (sd, penalty) in STRATEGIES.items():
        noise, absent_noise = rng.normal(0, sd, n), rng.normal(0, 1, n)
        noises[s] = (noise, absent_noise, penalty)
        frames.append(
            pd.DataFrame(
                {
                    "strategy": s,
                    "patient_id": ids,
                    "split": split,
                    "prob": _strategy_prob(x, present, prior_logit, noise, absent_noise, penalty),
                }
            )
        )
    for j, name in enumerate(MODALITIES):
        only = np.zeros_like(present)
        only[:, j] = present[:, j]
        frames.append(
            pd.DataFrame(
                {
                    "strategy": f"single:{name}",
                    "patient_id": ids,
                    "split": split,
                    "prob": _strategy_prob(
                        x, only, prior_logit, rng.normal(0, 0.3, n), np.zeros(n), 0.0
                    ),
                }
            )
        )
    predictions = pd.concat(frames, ignore_index=True)
    degradation = pd.DataFrame(
        columns=["strategy", "scenario", "rate", "dropped", "mask_seed", "patient_id", "prob"]
    )
    if with_degradation:
        degradation = _simulate_degradation(
            x[:n_test],
            present[:n_test],
            ids[:n_test],
            prior_logit,
            noises,
            rates,
            n_mask_seeds,
            stress_strategies or tuple(STRATEGIES),
        )
    recommendation = [
        {"strategy": "late", "reason": "modalities often missing; late fusion degrades gracefully"},
        {"strategy": "intermediate", "reason": "dimensionality gap between genomics and EHR"},
        {"strategy": "attention", "reason": "masks absent tokens, harder to validate"},
        {"strategy": "early", "reason": "breaks on missing modalities"},
    ]
    return SyntheticEvaluationInputs(predictions, patients, degradation, recommendation)


def _simulate_degradation(
    x, present, ids, prior_logit, noises, rates, n_seeds, strategies
) -> pd.DataFrame:
    n, m = present.shape
    frames = []

    def emit(strategy, scenario, rate, dropped, seed, mask, rows=slice(None)):
        noise, absent_noise, penalty = noises[strategy]
        prob = _strategy_prob(
            x[rows], mask, prior_logit, noise[:n][rows], absent_noise[:n][rows], penalty
        )
        frames.append(
            pd.DataFrame(
                {
                    "strategy": strategy,
                    "scenario": scenario,
                    "rate": rate,
                    "dropped": dropped,
                    "mask_seed": seed,
                    "patient_id": ids[rows],
                    "prob": prob,
                }
            )
        )

    for seed in range(n_seeds):
        for rate in rates:
            masks = {"global": random_modality_masks(present, rate, seed)}
            for j, name in enumerate(MODALITIES):
                masks[f"modality:{name}"] = random_modality_masks(present, rate, seed, modality=j)
            for scenario, mask in masks.items():
                for s in strategies:
                    emit(s, scenario, rate, "", seed, mask)
    complete = np.flatnonzero(present.all(axis=1))
    for j, name in enumerate(MODALITIES):
        loo = present[complete].copy()
        loo[:, j] = False
        single = np.zeros_like(loo)
        single[:, j] = True
        for s in strategies:
            emit(s, "leave_one_out", np.nan, name, 0, loo, complete)
            emit(s, "single_modality", np.nan, name, 0, single, complete)
    out = pd.concat(frames, ignore_index=True)
    for col in ("strategy", "scenario", "dropped"):
        out[col] = out[col].astype("category")
    return out
