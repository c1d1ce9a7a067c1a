"""Scoring fitted models on patients, and the stress tests, through the one prediction API.

Pure code (no dagster): the predictions asset and the batch re-evaluation call it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from fusion_assets.cohorts.deployment_profile import DeploymentProfile
from fusion_assets.metrics.degradation import (
    DEPLOYMENT_RATE,
    DEPLOYMENT_REPLAY,
    MECHANISM_SHIFT,
    STRESS_RATES,
    STRESS_SEEDS,
    random_modality_masks,
)
from fusion_assets.models.api import FittedModel
from fusion_assets.models.batch import subset_inputs


def score(
    models: Mapping[str, FittedModel],
    frames: Mapping[str, pd.DataFrame],
    patients: pd.DataFrame,
    device: str = "cpu",
) -> pd.DataFrame:
    """``strategy, patient_id, split, prob`` for every model and every row of ``patients``.

    ``patients`` needs ``patient_id`` and ``split``; absent modalities are simply missing.
    ``device`` is where torch models score (``models/device.py``).
    """
    ids = patients["patient_id"].tolist()
    parts = []
    for strategy, model in models.items():
        prob = model.predict_proba(model.prepare(dict(frames), ids), device=device)
        parts.append(
            pd.DataFrame(
                {
                    "strategy": strategy,
                    "patient_id": ids,
                    "split": patients["split"].to_numpy(),
                    "prob": prob,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def _rows(strategy, scenario, rate, dropped, seed, ids, prob) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "strategy": strategy,
            "scenario": scenario,
            "rate": rate,
            "dropped": dropped,
            "mask_seed": seed,
            "patient_id": ids,
            "prob": prob,
        }
    )


def deployment_masks(
    present: np.ndarray,
    modalities: Sequence[str],
    deployment: DeploymentProfile,
    n_seeds: int,
) -> Iterable[tuple[str, float, str, int, np.ndarray]]:
    """Pattern-shift stress tests toward a deployment profile (rate NaN: not a curve).

    - ``deployment_replay``: each patient is given a pattern drawn from the deployment
      mix and keeps the modalities it has that the pattern has (a modality a patient
      lacks cannot be added, so the replay only removes);
    - ``deployment_rate:<m>``: modality m alone dropped at random among the patients
      that have it, down to its deployment rate (no scenario where the held-out rate is
      already at or below it).
    """
    mix = deployment.target_mix(list(modalities))
    flags = np.array([[m in p.split("+") for m in modalities] for p in mix.index], dtype=bool)
    shares = mix.to_numpy(dtype=np.float64)
    held_out = present.mean(axis=0)
    deployed = flags.T.astype(np.float64) @ shares  # each modality's rate under the mix
    for seed in range(n_seeds):
        rng = np.random.default_rng([seed, 0x6D6978])  # "mix": apart from the random masks
        drawn = rng.choice(len(shares), size=len(present), p=shares)
        yield DEPLOYMENT_REPLAY, np.nan, "", seed, present & flags[drawn]
        for j, name in enumerate(modalities):
            if held_out[j] <= deployed[j] or held_out[j] == 0:
                continue
            drop = rng.random(len(present)) < 1.0 - deployed[j] / held_out[j]
            keep = present.copy()
            keep[:, j] &= ~drop
            yield f"{DEPLOYMENT_RATE}{name}", np.nan, name, seed, keep


# The missingness-mechanism shift: at deployment a patient with the outcome keeps each
# modality with odds this many times those of the held-out patients with it (0.5: the
# sicker go without tests more often), the others keep theirs. Half or double the odds is
# the synthetic generator's MNAR strength (cohorts/synthetic_params.MNAR_ODDS_RATIO = 2).
MECHANISM_ODDS_RATIO = 0.5


def mechanism_masks(
    present: np.ndarray, labels: np.ndarray, n_seeds: int, odds_ratio: float = MECHANISM_ODDS_RATIO
) -> Iterable[tuple[str, float, str, int, np.ndarray]]:
    """``mechanism:mnar_label``: availability made informative about the label (MNAR by
    label) whatever the training mechanism was. Only removes: among the patients with the
    outcome, each modality is kept with the probability that turns its held-out odds of
    presence into ``odds_ratio`` times those odds; the others keep everything."""
    labels = np.asarray(labels).astype(bool)
    if labels.all() or not labels.any():
        return
    held = present[labels].mean(axis=0)  # P(present | y = 1) per modality
    with np.errstate(divide="ignore", invalid="ignore"):
        odds = held / (1.0 - held)
        target = np.where(np.isfinite(odds), odds * odds_ratio, np.inf)
        keep_rate = np.where(held > 0, (target / (1.0 + target)) / held, 1.0)
    keep_rate = np.clip(np.nan_to_num(keep_rate, nan=1.0), 0.0, 1.0)
    for seed in range(n_seeds):
        rng = np.random.default_rng([seed, 0x6D6E6172])  # "mnar"
        drop = labels[:, None] & (rng.random(present.shape) >= keep_rate[None, :])
        yield MECHANISM_SHIFT, np.nan, "", seed, present & ~drop


def stress_scenarios(
    present: np.ndarray,
    modalities: Sequence[str],
    rates: Iterable[float] = STRESS_RATES,
    n_seeds: int = STRESS_SEEDS,
    deployment: DeploymentProfile | None = None,
    labels: np.ndarray | None = None,
) -> Iterable[tuple[str, float, str, int, np.ndarray]]:
    """(scenario, rate, dropped, mask_seed, keep mask) for every stress test.

    Masks depend only on presence, rates and seeds (and, for the mechanism shift, the
    labels), so every strategy meets the very same missing modalities (a paired
    comparison). With a ``deployment`` profile the pattern-shift scenarios of
    ``deployment_masks`` come too; with ``labels``, ``mechanism_masks``.
    """
    if deployment is not None:
        yield from deployment_masks(present, modalities, deployment, n_seeds)
    if labels is not None:
        yield from mechanism_masks(present, labels, n_seeds)
    rates = tuple(rates)
    for seed in range(n_seeds):
        for rate in rates:
            yield "global", rate, "", seed, random_modality_masks(present, rate, seed)
            for j, name in enumerate(modalities):
                mask = random_modality_masks(present, rate, [seed, j], modality=j)
                yield f"modality:{name}", rate, name, seed, mask
    complete = present.all(axis=1)
    for j, name in enumerate(modalities):
        leave_out = complete[:, None] & (np.arange(len(modalities)) != j)[None, :]
        yield "leave_one_out", np.nan, name, 0, leave_out
        only = complete[:, None] & (np.arange(len(modalities)) == j)[None, :]
        yield "single_modality", np.nan, name, 0, only


def stress_test(
    models: Mapping[str, FittedModel],
    frames: Mapping[str, pd.DataFrame],
    patient_ids: Sequence[str],
    rates: Iterable[float] = STRESS_RATES,
    n_seeds: int = STRESS_SEEDS,
    per_copy: bool = False,
    deployment: DeploymentProfile | None = None,
    labels: Mapping[str, int] | pd.Series | None = None,
) -> pd.DataFrame:
    """Predictions with whole modalities removed (see ``metrics.degradation`` for the scenarios).

    Leave-one-out and single-modality rows cover only the complete-case patients.
    Every scenario's masks are scored together by ``FittedModel.predict_proba_masks``
    (``models/masked.py``): each patient's encoders run once, and only the (patient,
    mask) pairs a scenario changes are scored, once each. ``per_copy=True`` scores each
    scenario's masked copies through the whole model instead (the way this was done
    before, kept as the reference the equality test and ``benchmarks/stress.py``
    compare against): the same probabilities, many times the work.
    """
    ids = np.asarray(list(patient_ids))
    parts = []
    for strategy, model in models.items():
        prepared = model.prepare(dict(frames), ids.tolist())
        present = prepared.present
        complete = present.all(axis=1)
        y = None
        if labels is not None:  # every patient labelled, or no mechanism shift
            known = np.asarray([labels.get(i, np.nan) for i in ids], dtype=np.float64)
            y = known.astype(np.int64) if np.isfinite(known).all() else None
        scenarios = list(
            stress_scenarios(present, list(prepared.modality_names), rates, n_seeds, deployment, y)
        )
        if per_copy:
            probs = _per_copy(model, prepared, [keep for *_, keep in scenarios])
        else:
            probs = model.predict_proba_masks(prepared, np.stack([keep for *_, keep in scenarios]))
        for (scenario, rate, dropped, seed, _), prob in zip(scenarios, probs, strict=True):
            subset = complete if scenario in ("leave_one_out", "single_modality") else slice(None)
            parts.append(_rows(strategy, scenario, rate, dropped, seed, ids[subset], prob[subset]))
    return pd.concat(parts, ignore_index=True)


def _per_copy(model: FittedModel, prepared, keeps: list[np.ndarray]) -> list[np.ndarray]:
    """Each mask through the whole model: the patients it changes re-scored, the rest copied."""
    present = prepared.present
    full = model.predict_proba(prepared)
    out = []
    for keep in keeps:
        prob = full.copy()
        rows = np.flatnonzero(((present & keep) != present).any(axis=1))
        if rows.size:
            prob[rows] = model.predict_proba(subset_inputs(prepared, rows), keep[rows])
        out.append(prob)
    return out
