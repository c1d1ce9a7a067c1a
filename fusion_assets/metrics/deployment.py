"""What each strategy is expected to do under the deployment's modality availability.

Availability is a property of the deployment, not of the training data. A
``DeploymentProfile`` says what the deployment will see: per-modality availability
rates (modalities independent) or an explicit mix of availability patterns. The
held-out patients are reweighted to that mix by importance weights per pattern,

    w_i = target share of pattern(i) / held-out share of pattern(i),

so every metric becomes its expectation under the deployment mix, estimated from
patients with exactly that pattern: no modality is masked, no model is re-run. The
intervals come from the same label-stratified bootstrap as the report (counts × w).

What reweighting cannot do is named, not hidden:

- a pattern of the deployment mix that no held-out patient has (``unseen``): its
  share cannot be estimated and the other patterns are renormalised over the rest
  (``covered`` is the share of the deployment mix the estimate speaks for);
- a pattern with few held-out patients but a large target share makes the estimate
  rest on few patients: the effective sample size (Σw)² / Σw² is reported, with a
  warning below ``ESS_WARNING``.

Pure numpy / pandas / pydantic; no dagster.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fusion_assets.cohorts.deployment_profile import DeploymentProfile
from fusion_assets.disclosure import published_share
from fusion_assets.metrics.bootstrap import (
    percentile_ci,
    stratified_bootstrap_counts,
    weighted_auroc,
    weighted_brier,
)
from fusion_assets.metrics.classification import auroc
from fusion_assets.metrics.degradation import DEPLOYMENT_RATE, DEPLOYMENT_REPLAY, MECHANISM_SHIFT
from fusion_assets.metrics.net_benefit import weighted_net_benefit, weighted_treat_all
from fusion_assets.metrics.subgroups import repeat_mean, repeat_probabilities, wide_probabilities

# An effective sample size under this many patients: the deployment estimate is flagged.
ESS_WARNING = 100


@dataclass
class Reweighting:
    """Importance weights of held-out patients toward a target pattern mix."""

    weights: np.ndarray  # per held-out patient, mean 1 over the covered patients
    target: pd.Series  # pattern -> deployment share
    observed: pd.Series  # pattern -> held-out share
    unseen: pd.Series  # deployment patterns no held-out patient has -> share
    covered: float  # deployment share of the patterns the held-out patients have
    ess: float  # effective sample size (Σw)² / Σw²
    table: pd.DataFrame = field(default_factory=pd.DataFrame)  # per pattern: shares, n, weight


def reweight(patterns: pd.Series | np.ndarray, target: pd.Series) -> Reweighting:
    """Weights that make the held-out patients' pattern mix ``target`` (see module doc)."""
    patterns = pd.Series(np.asarray(patterns, dtype=object)).astype(str)
    counts = patterns.value_counts()
    observed = counts / counts.sum()
    seen = target[target.index.isin(observed.index)]
    unseen = target[~target.index.isin(observed.index)].sort_values(ascending=False)
    covered = float(seen.sum())
    if covered <= 0:
        raise ValueError(
            "No held-out patient has any pattern of the deployment profile: nothing to "
            f"reweight (deployment patterns {list(target.index)[:5]}...)."
        )
    per_pattern = (seen / covered) / observed.reindex(seen.index)
    weights = patterns.map(per_pattern).fillna(0.0).to_numpy(dtype=np.float64, copy=True)
    weights *= len(weights) / weights.sum()
    ess = float(weights.sum() ** 2 / np.sum(weights**2))
    index = observed.index.union(target.index)
    table = pd.DataFrame(
        {
            "pattern": index,
            "deployment_share": target.reindex(index).fillna(0.0).to_numpy(),
            "held_out_share": observed.reindex(index).fillna(0.0).to_numpy(),
            "n": counts.reindex(index).fillna(0).astype(int).to_numpy(),
            "weight": per_pattern.reindex(index).fillna(0.0).to_numpy(),
        }
    ).sort_values("deployment_share", ascending=False, ignore_index=True)
    return Reweighting(weights, target, observed, unseen, covered, ess, table)


DEPLOYMENT_COLUMNS = [
    "profile",
    "strategy",
    "auroc_held_out",
    "auroc",
    "auroc_ci_low",
    "auroc_ci_high",
    "brier",
    "brier_ci_low",
    "brier_ci_high",
    "rank",
]


@dataclass
class DeploymentResult:
    """The deployment estimate: per strategy, and per named threshold the net benefit."""

    profile: DeploymentProfile
    reweighting: Reweighting
    table: pd.DataFrame  # DEPLOYMENT_COLUMNS
    net_benefit: pd.DataFrame  # profile, strategy, threshold, net_benefit, ci_low, ci_high
    n_patients: int
    warnings: list[str] = field(default_factory=list)


def deployment_estimates(
    predictions: pd.DataFrame,
    patients: pd.DataFrame,
    profile: DeploymentProfile,
    modalities: list[str],
    thresholds: tuple[float, ...],
    n_boot: int,
    seed: int = 0,
    ci_level: float = 0.95,
    repeats: pd.DataFrame | None = None,
) -> DeploymentResult:
    """Each strategy's AUROC, Brier and net benefit under the deployment mix, with paired CIs.

    Patients and probabilities as for ``subgroups.subgroup_table`` (``patients`` needs a
    ``pattern`` column); in cross-validation mode the metrics are computed per repeat and
    averaged, as in the subgroup table, on one shared weighted count matrix.
    """
    test, strategies = wide_probabilities(predictions, patients, "test")
    if "pattern" not in test.columns:
        raise ValueError("patients lacks the 'pattern' column the deployment profile reweights.")
    rew = reweight(test["pattern"], profile.target_mix(modalities))
    y = test["label"].to_numpy().astype(np.int8)
    counts = stratified_bootstrap_counts(y, n_boot, seed).astype(np.float64)
    weighted = counts * rew.weights[:, None]
    per_repeat = repeat_probabilities(repeats, test, strategies)
    t = np.asarray(thresholds, dtype=np.float64)
    rows, nb_rows = [], []
    for s in strategies:
        point, boot = _weighted_metrics(y, [r[s] for r in per_repeat], rew.weights, weighted, t)
        rows.append(
            {
                "profile": profile.name,
                "strategy": s,
                "auroc_held_out": point["auroc_held_out"],
                "auroc": point["auroc"],
                **_ci("auroc", boot["auroc"], ci_level),
                "brier": point["brier"],
                **_ci("brier", boot["brier"], ci_level),
            }
        )
        for k, threshold in enumerate(t):
            lo, hi = percentile_ci(boot["net_benefit"][k], ci_level)
            nb_rows.append(
                {
                    "profile": profile.name,
                    "strategy": s,
                    "threshold": float(threshold),
                    "net_benefit": float(point["net_benefit"][k]),
                    "ci_low": lo,
                    "ci_high": hi,
                }
            )
    treat_all = weighted_treat_all(y, t, rew.weights)[:, 0]
    treat_all_boot = weighted_treat_all(y, t, weighted)
    for k, threshold in enumerate(t):
        lo, hi = percentile_ci(treat_all_boot[k], ci_level)
        nb_rows.append(
            {
                "profile": profile.name,
                "strategy": "treat all",
                "threshold": float(threshold),
                "net_benefit": float(treat_all[k]),
                "ci_low": lo,
                "ci_high": hi,
            }
        )
    table = pd.DataFrame(rows, columns=DEPLOYMENT_COLUMNS[:-1])
    table["rank"] = table["auroc"].rank(ascending=False, method="min")
    return DeploymentResult(
        profile,
        rew,
        table.sort_values("auroc", ascending=False, ignore_index=True),
        pd.DataFrame(nb_rows),
        n_patients=len(y),
        warnings=_warnings(rew, profile),
    )


def _ci(name: str, samples: np.ndarray, level: float) -> dict[str, float]:
    lo, hi = percentile_ci(samples, level)
    return {f"{name}_ci_low": lo, f"{name}_ci_high": hi}


def _weighted_metrics(
    y: np.ndarray,
    probs: list[np.ndarray],
    weights: np.ndarray,
    weighted_counts: np.ndarray,
    thresholds: np.ndarray,
) -> tuple[dict, dict]:
    """Point estimates (under ``weights``) and resamples (under ``weighted_counts``) of one
    strategy, averaged over repeats; patients a repeat did not predict get weight 0 there."""
    point: dict[str, list] = {"auroc": [], "auroc_held_out": [], "brier": [], "net_benefit": []}
    boot: dict[str, list] = {"auroc": [], "brier": [], "net_benefit": []}
    for p in probs:
        ok = np.isfinite(p)
        pp = np.where(ok, p, 0.0)
        w, wc = weights * ok, weighted_counts * ok[:, None]
        point["auroc"].append(weighted_auroc(y, pp, w)[0])
        point["auroc_held_out"].append(weighted_auroc(y, pp, ok.astype(np.float64))[0])
        point["brier"].append(weighted_brier(y, pp, w)[0])
        point["net_benefit"].append(weighted_net_benefit(y, pp, thresholds, w)[:, 0])
        boot["auroc"].append(weighted_auroc(y, pp, wc))
        boot["brier"].append(weighted_brier(y, pp, wc))
        boot["net_benefit"].append(weighted_net_benefit(y, pp, thresholds, wc))
    points = {k: repeat_mean(np.stack(v)) for k, v in point.items()}
    boots = {k: repeat_mean(np.stack(v)) for k, v in boot.items()}
    return {k: (float(v) if np.ndim(v) == 0 else v) for k, v in points.items()}, boots


def _warnings(rew: Reweighting, profile: DeploymentProfile) -> list[str]:
    out = []
    if len(rew.unseen):
        # a batch's measured shares stand for patients: small ones are not printed
        hidden = profile.hidden_patterns()
        named = ", ".join(
            p if p in hidden else f"{p} ({s:.0%})" for p, s in rew.unseen.head(5).items()
        )
        n = profile.batch_patients
        shown = n is None or published_share(1 - rew.covered, n) is not None
        part = f"{1 - rew.covered:.0%} of the deployment mix" if shown else "Part of the mix"
        rest = f"the other {rew.covered:.0%}" if shown else "the rest"
        out.append(
            f"{part} has patterns no held-out patient has "
            f"({named}{', ...' if len(rew.unseen) > 5 else ''}): the estimate speaks for "
            f"{rest} only"
        )
    if rew.ess < ESS_WARNING:
        out.append(
            f"the estimate rests on an effective {rew.ess:.0f} patients (below {ESS_WARNING}): "
            "a pattern the deployment relies on is rare among the held-out patients"
        )
    return out


SHIFT_COLUMNS = ["strategy", "scenario", "modality", "auroc_mean", "auroc_sd", "n_seeds", "full"]


def pattern_shift_table(stress: pd.DataFrame, patients: pd.DataFrame) -> pd.DataFrame:
    """The pattern-shift stress tests (``scoring.deployment_masks``, ``mechanism_masks``) per
    strategy: mean and SD over mask seeds of the AUROC under the deployment replay, under
    each modality dropped to its deployment rate and under the MNAR-by-label mechanism, beside ``full``, the AUROC of the same patients with nothing
    removed (scenario ``global`` at rate 0). Empty without deployment scenarios."""
    if stress is None or stress.empty:
        return pd.DataFrame(columns=SHIFT_COLUMNS)
    shifted = stress["scenario"].astype(str)
    is_shift = (
        (shifted == DEPLOYMENT_REPLAY)
        | (shifted == MECHANISM_SHIFT)
        | shifted.str.startswith(DEPLOYMENT_RATE)
    )
    if not is_shift.any():
        return pd.DataFrame(columns=SHIFT_COLUMNS)
    labels = patients.set_index("patient_id")["label"]
    base = stress[(shifted == "global") & (stress["rate"] == 0.0) & (stress["mask_seed"] == 0)]
    full = {
        s: auroc(labels.loc[g["patient_id"]].to_numpy(), g["prob"].to_numpy())
        for s, g in base.groupby("strategy")
    }
    rows = []
    part = stress[is_shift]
    for (strategy, scenario, seedless), g in part.groupby(
        ["strategy", "scenario", "dropped"], sort=True
    ):
        per_seed = [
            auroc(labels.loc[s["patient_id"]].to_numpy(), s["prob"].to_numpy())
            for _, s in g.groupby("mask_seed")
        ]
        rows.append(
            {
                "strategy": strategy,
                "scenario": (
                    scenario
                    if scenario in (DEPLOYMENT_REPLAY, MECHANISM_SHIFT)
                    else "deployment_rate"
                ),
                "modality": seedless or "",
                "auroc_mean": float(np.nanmean(per_seed)),
                "auroc_sd": float(np.nanstd(per_seed, ddof=1)) if len(per_seed) > 1 else np.nan,
                "n_seeds": len(per_seed),
                "full": full.get(strategy, np.nan),
            }
        )
    return pd.DataFrame(rows, columns=SHIFT_COLUMNS)
