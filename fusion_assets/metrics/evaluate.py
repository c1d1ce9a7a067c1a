"""One call from the evaluation asset: every table the report and the checks need.

    result = evaluate(predictions, patients, degradation_predictions, recommendation, config)
    files = render_report(result, out_dir)          # fusion_assets.metrics.report
    leaks = result.leaks                            # non-empty -> the asset check fails

Nothing here carries patient identifiers: every table is aggregated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fusion_assets.cohorts.deployment_profile import DeploymentProfile
from fusion_assets.disclosure import rate_publishable
from fusion_assets.metrics.classification import reliability_curve
from fusion_assets.metrics.config import EvaluationConfig
from fusion_assets.metrics.degradation import (
    complete_case_table,
    degradation_curves,
    degradation_summary,
)
from fusion_assets.metrics.deployment import (
    DeploymentResult,
    deployment_estimates,
    pattern_shift_table,
)
from fusion_assets.metrics.leakage import leakage_flags
from fusion_assets.metrics.subgroups import (
    SubgroupResult,
    repeat_mean,
    repeat_probabilities,
    subgroup_table,
    wide_probabilities,
)
from fusion_assets.metrics.tripod import availability_by_group
from fusion_assets.metrics.utility import Utility, clinical_utility
from fusion_assets.metrics.verdict import Verdict, build_verdict
from fusion_assets.names import EARLY, LATE


@dataclass
class EvaluationResult:
    """Aggregated evaluation outputs (see each producing function for columns)."""

    config: EvaluationConfig
    subgroups: SubgroupResult
    reliability: pd.DataFrame  # strategy, bin, mean_predicted, observed, n
    pattern_counts: pd.DataFrame  # pattern, n, events (events NaN when n < limit)
    curves: pd.DataFrame  # degradation_curves
    summary: pd.DataFrame  # degradation_summary
    complete_case: pd.DataFrame  # complete_case_table
    verdict: Verdict
    leaks: pd.DataFrame  # leakage_flags
    recommendation: list[dict] = field(default_factory=list)
    cohort: dict = field(default_factory=dict)  # n_test, events, prevalence, n_validation
    utility: Utility | None = None  # decision curves, net benefit at named thresholds
    deployment: DeploymentResult | None = None  # under the deployment profile, when given
    # the pattern-shift stress tests toward the spec's deployment profile (SHIFT_COLUMNS)
    pattern_shift: pd.DataFrame = field(default_factory=pd.DataFrame)
    # modality availability per demographic subgroup (TRIPOD+AI 20b; metrics/tripod.py)
    availability: pd.DataFrame = field(default_factory=pd.DataFrame)
    # eval.model_cost (models/cost.py): what each model cost to fit and to run; empty if unknown
    cost: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def table(self) -> pd.DataFrame:
        return self.subgroups.table


def reliability_table(
    predictions: pd.DataFrame,
    patients: pd.DataFrame,
    config: EvaluationConfig,
    repeats: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Equal-mass reliability bins per strategy on the test split.

    With ``repeats`` (cross-validation) the bins are drawn per repeat and averaged
    bin by bin: every repeat predicts each patient once, so equal-mass bin b holds
    the same number of patients in every repeat (the b-th tenth of that repeat's
    predictions), and the curve stays a single-model one, like the table's ECE.
    Bins with fewer patients, events or non-events than the disclosure limit are dropped
    (``disclosure.rate_publishable``).
    """
    test, strategies = wide_probabilities(predictions, patients, "test")
    per_repeat = repeat_probabilities(repeats, test, strategies)
    rows = []
    y_all = test["label"].to_numpy()
    for s in strategies:
        curves = []
        for probs in per_repeat:
            p = probs[s]
            ok = np.isfinite(p)
            curves.append(reliability_curve(y_all[ok], p[ok], config.ece_bins))
        n_bins = min(len(c[2]) for c in curves)
        mean_p, obs, size = (
            repeat_mean(np.stack([np.asarray(c[i][:n_bins], dtype=np.float64) for c in curves]))
            for i in range(3)
        )
        for b, (mp, ob, n) in enumerate(zip(mean_p, obs, size, strict=True)):
            # The observed rate times the bin's size is the bin's event count: a bin is
            # drawn only when that count and its complement may be published.
            if rate_publishable(round(ob * n), n, config.suppress_below):
                rows.append((s, b, float(mp), float(ob), int(round(n))))
    return pd.DataFrame(rows, columns=["strategy", "bin", "mean_predicted", "observed", "n"])


def stressed_repeat(predictions: pd.DataFrame, repeats: pd.DataFrame | None) -> pd.DataFrame:
    """The test predictions of the models the stress tests ran on: in cross-validation the
    first repeat's out-of-fold rows (``split`` 'test'), otherwise ``predictions``."""
    if repeats is None:
        return predictions
    part = repeats[repeats["repeat"] == repeats["repeat"].min()]
    if "role" in part.columns:
        part = part[part["role"] == "test"]
    return part.assign(split="test")[["strategy", "patient_id", "split", "prob"]]


def pattern_counts(
    predictions: pd.DataFrame, patients: pd.DataFrame, config: EvaluationConfig
) -> pd.DataFrame:
    """Test patients per availability pattern (all patterns, before pooling)."""
    ids = predictions.loc[predictions["split"] == "test", "patient_id"].unique()
    test = patients[patients["patient_id"].isin(ids)]
    if "pattern" not in test.columns:
        return pd.DataFrame(columns=["pattern", "n", "events"])
    g = test.groupby(test["pattern"].fillna("unknown").astype(str))["label"]
    out = pd.DataFrame({"n": g.size(), "events": g.sum()}).reset_index()
    out["events"] = out["events"].astype(float)
    out.loc[out["n"] < config.suppress_below, "events"] = np.nan
    return out.sort_values("n", ascending=False, ignore_index=True)


def evaluate(
    predictions: pd.DataFrame,
    patients: pd.DataFrame,
    degradation_predictions: pd.DataFrame | None = None,
    recommendation: list[dict] | None = None,
    config: EvaluationConfig | None = None,
    modalities: list[str] | None = None,
    early: str = EARLY,
    late: str = LATE,
    repeats: pd.DataFrame | None = None,
    deployment: DeploymentProfile | None = None,
) -> EvaluationResult:
    """Subgroup table, degradation tables, verdict and leakage flags in one call.

    ``modalities`` (spec order) identifies the complete-case pattern; if omitted
    it is inferred from the pattern strings. ``repeats`` (cross-validation mode):
    the per-repeat out-of-fold predictions (``eval.oof_predictions``: ``strategy,
    repeat, patient_id, prob``, ``role == 'test'`` rows used); metrics are then
    computed per repeat and averaged (see ``subgroups``), while ``predictions``
    still supplies the cohort, the validation rows and the complete-case baseline.
    ``deployment``: the expected availability at deployment (``metrics/deployment.py``);
    it needs ``modalities``.
    """
    config = config or EvaluationConfig()
    res = subgroup_table(predictions, patients, config, repeats)
    if degradation_predictions is not None and len(degradation_predictions):
        curves = degradation_curves(degradation_predictions, patients)
        summary = degradation_summary(curves, late=late)
        cc = complete_case_table(
            degradation_predictions, patients, stressed_repeat(predictions, repeats)
        )
    else:
        curves = pd.DataFrame(
            columns=["strategy", "scenario", "rate", "auroc_mean", "auroc_sd", "n_seeds", "n"]
        )
        summary = pd.DataFrame(columns=["strategy", "scenario", "area", "drop"])
        cc = pd.DataFrame(columns=["strategy", "scenario", "modality", "n", "auroc"])
    verdict = build_verdict(res, recommendation, summary, config, early, late, modalities)
    all_row = res.table[res.table["subgroup_type"] == "all"].iloc[0]
    n_val = int((predictions["split"] == "validation").sum() / max(1, len(res.strategies)))
    cohort = {
        "n_test": int(all_row["n"]),
        "events": int(all_row["events"]),
        "prevalence": float(all_row["prevalence"]),
        "n_validation": n_val,
    }
    deployed = None
    if deployment is not None:
        if modalities is None:
            raise ValueError("A deployment profile needs the cohort's modalities (spec order).")
        deployed = deployment_estimates(
            predictions,
            patients,
            deployment,
            list(modalities),
            tuple(config.net_benefit_thresholds),
            config.n_boot,
            config.seed,
            config.ci_level,
            repeats,
        )
    return EvaluationResult(
        config=config,
        subgroups=res,
        reliability=reliability_table(predictions, patients, config, repeats),
        pattern_counts=pattern_counts(predictions, patients, config),
        curves=curves,
        summary=summary,
        complete_case=cc,
        verdict=verdict,
        leaks=leakage_flags(res.table),
        recommendation=list(recommendation or []),
        cohort=cohort,
        utility=clinical_utility(predictions, patients, config, repeats),
        deployment=deployed,
        pattern_shift=pattern_shift_table(degradation_predictions, patients),
        availability=(
            availability_by_group(predictions, patients, list(modalities), config)
            if modalities
            else pd.DataFrame()
        ),
    )
