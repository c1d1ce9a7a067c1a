"""The recommendation beside what was measured, and whether the seed claims hold.

- Per (non-suppressed) subgroup: the measured winner is the fusion candidate
  (every strategy except the ``single:*`` baselines) with the highest AUROC.
  The paired bootstrap interval of ΔAUROC(winner − recommended) decides
  whether the difference is clear (lower bound > 0) or "no clear winner".
- Stress tests: the winner is the candidate with the largest normalised area
  under the ``global`` degradation curve.
- Calibration: the rule of ``metrics.calibration`` on the recommended strategy
  and the measured all-patients winner, one plain sentence each.
- Seed claims, each answered ``holds`` / ``does not hold`` / ``inconclusive`` /
  ``not testable``:
  * "early fusion ahead on complete data": on the complete-case pattern
    subgroup, early has the highest AUROC with a paired CI vs the runner-up
    excluding 0 (holds); another strategy beats early with a CI excluding 0
    (does not hold); otherwise inconclusive.
  * "late fusion degrades least as modalities go missing": late has the
    smallest ``drop`` (AUROC at rate 0 minus the normalised area) in the
    ``global`` scenario (holds); another strategy's drop is smaller by more
    than ``tolerance`` (does not hold); otherwise inconclusive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd

from fusion_assets.disclosure import subgroup_disclosure
from fusion_assets.metrics.bootstrap import percentile_ci
from fusion_assets.metrics.calibration import judge_calibration
from fusion_assets.metrics.config import EvaluationConfig
from fusion_assets.metrics.subgroups import SubgroupResult
from fusion_assets.names import EARLY, LATE
from fusion_assets.study.evidence import load_evidence, study_sentences

WINNER_COLUMNS = [
    "subgroup_type",
    "subgroup",
    "n",
    "recommended",
    "recommended_auroc",
    "winner",
    "winner_auroc",
    "compared_with",
    "delta",
    "delta_ci_low",
    "delta_ci_high",
    "clear",
    "agrees",
    "sentence",
]


@dataclass
class ClaimCheck:
    claim: str
    status: str  # holds | does not hold | inconclusive | not testable
    evidence: str


@dataclass
class Verdict:
    recommended: str | None
    winners: pd.DataFrame
    stress_winner: str | None
    stress_sentence: str
    claims: list[ClaimCheck] = field(default_factory=list)
    calibration: list[str] = field(default_factory=list)  # one sentence per strategy judged
    study: list[str] = field(
        default_factory=list
    )  # what the recorded study says (study/evidence.py)

    @property
    def disagreements(self) -> list[str]:
        """One plain sentence per place where measurement and recommendation disagree."""
        out = [s for s in self.winners.loc[~self.winners["agrees"], "sentence"]]
        if self.stress_winner and self.recommended and self.stress_winner != self.recommended:
            out.append(self.stress_sentence)
        return out


def _fmt(x: float) -> str:
    return f"{x:+.3f}" if np.isfinite(x) else "n/a"


def _delta(res: SubgroupResult, key: tuple[str, str], a: str, b: str, level: float):
    boot = res.boot_auroc.get(key, {})
    if a not in boot or b not in boot:
        return float("nan"), float("nan")
    return percentile_ci(boot[a] - boot[b], level)


class _Comparison(NamedTuple):
    """The measured winner of one subgroup set against the recommendation."""

    compared_with: str | None
    delta: float
    delta_ci_low: float
    delta_ci_high: float
    clear: bool
    agrees: bool
    sentence: str


def subgroup_winners(
    res: SubgroupResult, recommended: str | None, config: EvaluationConfig
) -> pd.DataFrame:
    """Measured winner per subgroup beside the recommended strategy (``WINNER_COLUMNS``)."""
    t = res.table
    n_shown = subgroup_disclosure(t, config.suppress_below)["n_text"]  # small-cell rule
    t = t[~t["suppressed"] & ~t["strategy"].map(config.is_single) & t["auroc"].notna()]
    rows = []
    for key, g in t.groupby(["subgroup_type", "subgroup"], sort=False):
        g = g.sort_values(["auroc", "strategy"], ascending=[False, True])
        win = g.iloc[0]
        rec = g[g["strategy"] == recommended]
        rec_auc = float(rec["auroc"].iloc[0]) if len(rec) else float("nan")
        where = f"On {key[0]}={key[1]} (n={n_shown.loc[key]})"
        if recommended is None or not len(rec):
            nan = float("nan")
            sentence = f"{where} the measured winner is {win['strategy']}."
            comparison = _Comparison(recommended, nan, nan, nan, False, True, sentence)
        elif win["strategy"] == recommended:
            comparison = _recommended_leads(res, key, g, where, config.ci_level)
        else:
            comparison = _winner_beats_recommended(
                res, key, win, rec_auc, where, recommended, config.ci_level
            )
        rows.append(
            (
                *key,
                int(win["n"]),
                recommended,
                rec_auc,
                win["strategy"],
                float(win["auroc"]),
                *comparison,
            )
        )
    return pd.DataFrame(rows, columns=WINNER_COLUMNS)


def _recommended_leads(
    res: SubgroupResult, key: tuple[str, str], ranked: pd.DataFrame, where: str, level: float
) -> _Comparison:
    """The recommended strategy measured best: is it clearly ahead of the runner-up?"""
    win = ranked.iloc[0]
    recommended = win["strategy"]
    runner = ranked.iloc[1] if len(ranked) > 1 else None
    if runner is None:
        lo = hi = delta = float("nan")
    else:
        lo, hi = _delta(res, key, recommended, runner["strategy"], level)
        delta = win["auroc"] - runner["auroc"]
    clear = bool(lo > 0)
    sentence = f"{where} the recommended {recommended} also measured best" + (
        "." if clear else " but is not clearly ahead of the runner-up."
    )
    compared = runner["strategy"] if runner is not None else None
    return _Comparison(compared, delta, lo, hi, clear, True, sentence)


def _winner_beats_recommended(
    res: SubgroupResult,
    key: tuple[str, str],
    win: pd.Series,
    rec_auc: float,
    where: str,
    recommended: str,
    level: float,
) -> _Comparison:
    """Another strategy measured best: it disagrees with the recommendation only if clearly ahead."""
    lo, hi = _delta(res, key, win["strategy"], recommended, level)
    delta = float(win["auroc"] - rec_auc)
    clear = bool(lo > 0)
    sentence = (
        f"{where} {win['strategy']} beat the recommended {recommended} "
        f"(AUROC {win['auroc']:.3f} vs {rec_auc:.3f}, Δ {_fmt(delta)} "
        f"[{_fmt(lo)}, {_fmt(hi)}])"
        + ("." if clear else "; the interval includes 0, so there is no clear winner.")
    )
    return _Comparison(recommended, delta, lo, hi, clear, not clear, sentence)


def complete_pattern(patterns: list[str], modalities: list[str] | None = None) -> str | None:
    """The pattern string in which every modality is present, if it is among ``patterns``."""
    real = [p for p in patterns if p not in ("other", "none", "unknown")]
    names = set(modalities) if modalities else {m for p in real for m in p.split("+")}
    for p in real:
        if set(p.split("+")) == names:
            return p
    return None


def check_early_on_complete(
    res: SubgroupResult,
    config: EvaluationConfig,
    early: str = EARLY,
    modalities: list[str] | None = None,
) -> ClaimCheck:
    claim = "early fusion ahead on complete data"
    t = res.table
    pats = t.loc[t["subgroup_type"] == "pattern", "subgroup"].unique().tolist()
    key = ("pattern", complete_pattern(pats, modalities))
    only = dict(res.omitted).get("pattern")
    if key[1] is None and only is not None and complete_pattern([only], modalities) == only:
        # Every test patient is a complete case: the pattern subgroup is the whole cohort.
        key = ("all", "all")
        complete = only
    else:
        complete = key[1]
    if complete is None:
        return ClaimCheck(
            claim,
            "not testable",
            "No complete-case pattern subgroup of its own (too few complete-case test "
            f"patients; patterns under {config.min_pattern_size} are pooled into 'other').",
        )
    g = t[(t["subgroup_type"] == key[0]) & (t["subgroup"] == key[1])]
    g = g[~g["strategy"].map(config.is_single) & g["auroc"].notna()]
    if g.empty or early not in set(g["strategy"]):
        return ClaimCheck(claim, "not testable", f"No {early} AUROC on pattern {complete}.")
    g = g.sort_values("auroc", ascending=False)
    n = subgroup_disclosure(t, config.suppress_below).loc[key, "n_text"]  # small-cell rule
    if g["strategy"].iloc[0] == early:
        other = g["strategy"].iloc[1]
        lo, hi = _delta(res, key, early, other, config.ci_level)
        d = g["auroc"].iloc[0] - g["auroc"].iloc[1]
        status = "holds" if lo > 0 else "inconclusive"
        ev = (
            f"On the complete-case pattern {complete} (n={n}) {early} has the highest AUROC, "
            f"{_fmt(d)} [{_fmt(lo)}, {_fmt(hi)}] vs the runner-up {other}."
        )
    else:
        best = g["strategy"].iloc[0]
        lo, hi = _delta(res, key, best, early, config.ci_level)
        d = g["auroc"].iloc[0] - float(g.loc[g["strategy"] == early, "auroc"].iloc[0])
        status = "does not hold" if lo > 0 else "inconclusive"
        ev = (
            f"On the complete-case pattern {complete} (n={n}) {best} leads {early} by "
            f"{_fmt(d)} [{_fmt(lo)}, {_fmt(hi)}] AUROC."
        )
    return ClaimCheck(claim, status, ev)


def check_late_degrades_least(
    summary: pd.DataFrame | None,
    config: EvaluationConfig,
    late: str = LATE,
    tolerance: float = 0.005,
) -> ClaimCheck:
    claim = "late fusion degrades least as modalities go missing"
    if summary is None or summary.empty:
        return ClaimCheck(claim, "not testable", "No stress-test predictions were given.")
    g = summary[(summary["scenario"] == "global") & ~summary["strategy"].map(config.is_single)]
    g = g[g["drop"].notna()]
    if late not in set(g["strategy"]):
        return ClaimCheck(claim, "not testable", f"No global stress test for {late}.")
    g = g.sort_values("drop")
    late_drop = float(g.loc[g["strategy"] == late, "drop"].iloc[0])
    best = g.iloc[0]
    if best["strategy"] == late:
        return ClaimCheck(
            claim,
            "holds",
            f"{late} loses {late_drop:.3f} AUROC on average over the missingness rates, "
            "the least of all fusion strategies.",
        )
    gap = late_drop - float(best["drop"])
    status = "does not hold" if gap > tolerance else "inconclusive"
    return ClaimCheck(
        claim,
        status,
        f"{best['strategy']} loses {best['drop']:.3f} AUROC on average over the missingness "
        f"rates, {late} loses {late_drop:.3f} (difference {gap:.3f}; tolerance {tolerance}).",
    )


def stress_winner(summary: pd.DataFrame | None, config: EvaluationConfig) -> str | None:
    """Candidate with the largest normalised area under the global degradation curve."""
    if summary is None or summary.empty:
        return None
    g = summary[(summary["scenario"] == "global") & ~summary["strategy"].map(config.is_single)]
    g = g[g["area"].notna()]
    if g.empty:
        return None
    return str(g.sort_values(["area", "strategy"], ascending=[False, True])["strategy"].iloc[0])


def build_verdict(
    res: SubgroupResult,
    recommendation: list[dict] | None,
    summary: pd.DataFrame | None,
    config: EvaluationConfig,
    early: str = EARLY,
    late: str = LATE,
    modalities: list[str] | None = None,
) -> Verdict:
    """Everything the report's verdict section says, as data."""
    ranked = [r["strategy"] for r in (recommendation or []) if r.get("strategy")]
    recommended = next((s for s in ranked if s in res.strategies), None)
    winners = subgroup_winners(res, recommended, config)
    sw = stress_winner(summary, config)
    if sw is None:
        stress_sentence = "No stress tests were run."
    elif sw == recommended:
        stress_sentence = (
            f"Under random loss of modalities the recommended {sw} kept the most AUROC."
        )
    else:
        area = summary[(summary["scenario"] == "global")].set_index("strategy")["area"]
        rec_area = area.get(recommended, float("nan")) if recommended else float("nan")
        stress_sentence = (
            f"Under random loss of modalities {sw} kept the most AUROC "
            f"(mean AUROC over rates {area[sw]:.3f}"
            + (f" vs {rec_area:.3f} for the recommended {recommended})." if recommended else ").")
        )
    claims = [
        check_early_on_complete(res, config, early, modalities),
        check_late_degrades_least(summary, config, late),
    ]
    calibration = calibration_sentences(res, recommended, winners)
    study = study_sentences(recommended, load_evidence())
    return Verdict(recommended, winners, sw, stress_sentence, claims, calibration, study)


def calibration_sentences(
    res: SubgroupResult, recommended: str | None, winners: pd.DataFrame
) -> list[str]:
    """The calibration rule on the recommended strategy and the all-patients winner."""
    overall = winners[winners["subgroup_type"] == "all"]
    named = {"recommended": recommended}
    if len(overall) and overall["winner"].iloc[0] != recommended:
        named["measured best"] = overall["winner"].iloc[0]
    rows = res.table[res.table["subgroup_type"] == "all"].set_index("strategy")
    return [
        f"The {role} strategy: "
        + judge_calibration({**rows.loc[strategy].to_dict(), "strategy": strategy}).sentence()
        + "."
        for role, strategy in named.items()
        if strategy is not None and strategy in rows.index
    ]
