"""Promotion on evidence: does the candidate version replace the champion?

Pure code (no dagster, no mlflow). The first candidate is the recommended strategy, or
the measured winner when it beats the recommended one clearly (its all-patients AUROC
above the recommended's interval); when that candidate does not clear the rules, the
other of the two (recommended or measured winner) is tried next
(``candidate_order``), so a well-calibrated winner is not held back by a recommended
strategy whose probabilities fail the calibration rule. A candidate is promoted only
if every rule holds:

- **not worse than the champion**: the lower bound of the paired bootstrap interval of
  ΔAUROC(candidate − champion), on the same held-out patients, is above
  ``-max_auroc_loss``;
- **calibrated**: the slope by the rule of ``metrics.calibration`` (its interval
  contains 1 or lies within the band);
- **no subgroup left behind**: no subgroup of at least ``subgroup_min_n`` patients
  loses more than ``subgroup_max_loss`` AUROC against the champion.

Without a champion only the calibration rule applies. When the champion's evidence
cannot be put beside the candidate's on the same patients, the candidate is not
promoted: the champion stays until a person decides (``fusion-assets promote``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from fusion_assets.metrics.bootstrap import (
    percentile_ci,
    stratified_bootstrap_counts,
    weighted_auroc,
)
from fusion_assets.metrics.calibration import judge_calibration
from fusion_assets.metrics.classification import auroc
from fusion_assets.metrics.config import EvaluationConfig
from fusion_assets.metrics.subgroups import subgroup_masks


class PromotionRules(BaseModel):
    """The rules a candidate must clear (Dagster's ``PromotionConfig`` is a subclass)."""

    max_auroc_loss: float = Field(
        default=0.01, ge=0, description="Lower CI bound of ΔAUROC vs the champion must exceed -this"
    )
    subgroup_min_n: int = Field(default=100, ge=1, description="Subgroups this large are checked")
    subgroup_max_loss: float = Field(
        default=0.05, ge=0, description="The most AUROC a checked subgroup may lose"
    )
    require_calibration: bool = Field(
        default=True, description="The slope must pass the calibration rule"
    )
    n_boot: int = Field(default=1000, ge=10, description="Paired bootstrap resamples")
    seed: int = 0
    ci_level: float = Field(default=0.95, gt=0, lt=1)


@dataclass
class Decision:
    """The verdict on one candidate, with the evidence behind it."""

    candidate: str
    why_candidate: str
    champion: tuple[str, int] | None
    promoted: bool = False
    reasons: list[str] = field(default_factory=list)
    delta_auroc: float = float("nan")
    delta_ci: tuple[float, float] = (float("nan"), float("nan"))
    subgroups: pd.DataFrame = field(default_factory=pd.DataFrame)

    def summary(self) -> str:
        verb = "promoted to champion" if self.promoted else "not promoted"
        return f"{self.candidate} {verb}: " + "; ".join(self.reasons)


def choose_candidate(overall: pd.DataFrame, recommended: str | None) -> tuple[str, str]:
    """(strategy, why) from the all-patients rows of the subgroup table (fused strategies)."""
    rows = overall.dropna(subset=["auroc"]).set_index("strategy")
    if rows.empty:
        raise ValueError("No strategy has an all-patients AUROC: nothing to promote.")
    winner = str(rows["auroc"].idxmax())
    if recommended not in rows.index:
        return winner, f"measured winner (AUROC {rows.loc[winner, 'auroc']:.3f})"
    rec = rows.loc[recommended]
    if winner != recommended and rows.loc[winner, "auroc"] > rec["auroc_ci_high"]:
        return winner, (
            f"measured winner: AUROC {rows.loc[winner, 'auroc']:.3f} above the recommended "
            f"{recommended}'s interval [{rec['auroc_ci_low']:.3f}, {rec['auroc_ci_high']:.3f}]"
        )
    return recommended, f"recommended strategy (AUROC {rec['auroc']:.3f})"


def candidate_order(overall: pd.DataFrame, recommended: str | None) -> list[tuple[str, str]]:
    """The candidates in the order they are tried: ``choose_candidate``'s, then the other of
    (recommended, measured winner) when it differs, each with why it is a candidate."""
    first, why = choose_candidate(overall, recommended)
    order = [(first, why)]
    rows = overall.dropna(subset=["auroc"]).set_index("strategy")
    winner = str(rows["auroc"].idxmax())
    second = winner if first != winner else recommended
    if second is not None and second != first and second in rows.index:
        role = "measured winner" if second == winner else "recommended strategy"
        order.append(
            (
                second,
                f"{role} (AUROC {rows.loc[second, 'auroc']:.3f}), tried because {first} did "
                "not clear the rules",
            )
        )
    return order


def decide(
    candidate: str,
    why: str,
    candidate_prob: pd.Series,
    calibration_row: pd.Series,
    patients: pd.DataFrame,
    champion: tuple[str, int] | None,
    champion_prob: pd.Series | None,
    rules: PromotionRules,
) -> Decision:
    """Apply the rules; ``*_prob`` are held-out probabilities indexed by patient_id."""
    decision = Decision(candidate, why, champion)
    passed = _calibration_rule(decision, calibration_row, rules)
    if champion is None:
        decision.reasons.append("no champion yet: only the calibration rule applies")
    elif champion_prob is None:
        decision.reasons.append(
            f"the champion ({champion[0]} v{champion[1]}) has no held-out predictions on the "
            "same patients (another fold plan?): not compared, so not promoted"
        )
        passed = False
    else:
        passed = _paired_rules(decision, candidate_prob, champion_prob, patients, rules) and passed
    decision.promoted = passed
    return decision


def _calibration_rule(decision: Decision, row: pd.Series, rules: PromotionRules) -> bool:
    judgement = judge_calibration(row)
    ok = judgement.slope in ("ok", "wide")
    state = "passes" if ok else "fails"
    decision.reasons.append(f"calibration {state} ({judgement.slope_text})")
    return ok or not rules.require_calibration


def _paired_rules(
    decision: Decision,
    candidate_prob: pd.Series,
    champion_prob: pd.Series,
    patients: pd.DataFrame,
    rules: PromotionRules,
) -> bool:
    """ΔAUROC vs the champion (paired bootstrap) and the per-subgroup losses, in place."""
    common = patients[
        patients["patient_id"].isin(candidate_prob.index)
        & patients["patient_id"].isin(champion_prob.index)
    ].reset_index(drop=True)
    y = common["label"].to_numpy(dtype=int)
    a = candidate_prob.loc[common["patient_id"]].to_numpy(dtype=float)
    b = champion_prob.loc[common["patient_id"]].to_numpy(dtype=float)
    counts = stratified_bootstrap_counts(y, rules.n_boot, rules.seed)
    samples = weighted_auroc(y, a, counts) - weighted_auroc(y, b, counts)
    decision.delta_auroc = auroc(y, a) - auroc(y, b)
    decision.delta_ci = percentile_ci(samples, rules.ci_level)
    low = decision.delta_ci[0]
    ok_delta = bool(np.isfinite(low) and low > -rules.max_auroc_loss)
    decision.reasons.append(
        f"ΔAUROC vs champion {decision.delta_auroc:+.3f} [{low:+.3f}, {decision.delta_ci[1]:+.3f}] "
        f"on {len(common)} patients: lower bound {'above' if ok_delta else 'not above'} "
        f"-{rules.max_auroc_loss}"
    )
    decision.subgroups = subgroup_losses(common, a, b, rules)
    losing = decision.subgroups[decision.subgroups["loses"]]
    for _, row in losing.iterrows():
        decision.reasons.append(
            f"subgroup {row['subgroup_type']}={row['subgroup']} (n={row['n']}) loses "
            f"{-row['delta_auroc']:.3f} AUROC (more than {rules.subgroup_max_loss})"
        )
    if losing.empty:
        decision.reasons.append(
            f"no subgroup of ≥{rules.subgroup_min_n} patients loses more than "
            f"{rules.subgroup_max_loss} AUROC"
        )
    return ok_delta and losing.empty


def subgroup_losses(
    common: pd.DataFrame, a: np.ndarray, b: np.ndarray, rules: PromotionRules
) -> pd.DataFrame:
    """Candidate − champion AUROC per subgroup of the report with ≥ ``subgroup_min_n`` patients."""
    masks, _ = subgroup_masks(common, EvaluationConfig())
    y = common["label"].to_numpy(dtype=int)
    rows = []
    for kind, name, mask in masks:
        if kind == "all" or mask.sum() < rules.subgroup_min_n or len(np.unique(y[mask])) < 2:
            continue
        delta = auroc(y[mask], a[mask]) - auroc(y[mask], b[mask])
        rows.append(
            {
                "subgroup_type": kind,
                "subgroup": name,
                "n": int(mask.sum()),
                "delta_auroc": round(float(delta), 4),
                "loses": bool(delta < -rules.subgroup_max_loss),
            }
        )
    columns = ["subgroup_type", "subgroup", "n", "delta_auroc", "loses"]
    return pd.DataFrame(rows, columns=columns)


def markdown(decisions: list[Decision], champion_after: tuple[str, int] | None) -> str:
    """The report's promotion section: every candidate tried, in order."""
    holder = f"{champion_after[0]} v{champion_after[1]}" if champion_after else "none"
    lines = ["## Promotion", "", f"After this step, champion now: **{holder}**.", ""]
    for decision in decisions:
        lines += [
            f"Candidate: **{decision.candidate}** ({decision.why_candidate}). "
            f"{'Promoted' if decision.promoted else 'Not promoted'}.",
            "",
            *(f"- {reason}" for reason in decision.reasons),
            "",
        ]
    return "\n".join(lines)
