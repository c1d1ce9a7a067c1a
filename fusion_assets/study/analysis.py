"""The study's answer: the decision matrix's agreement with the measured winners, and the
two seed claims pooled over cells with a bootstrap interval.

Pure code (pandas, numpy, matplotlib; no dagster). Input: ``study_runner.read_study``'s frames.

Pooling. Each cell has its own label-stratified patient bootstrap (``measure.py``); the
cells are independent cohorts, so drawing replicate b of every cell and averaging them,
weighted by the patients each was measured on, is one replicate of a bootstrap
stratified by cell. The percentile interval of those averages is the pooled interval;
the pooled point is the same weighted average of the cells' point estimates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fusion_assets.decision_matrix import RecommendationThresholds, recommend_strategies
from fusion_assets.metrics.bootstrap import percentile_ci
from fusion_assets.metrics.plots import winner_map
from fusion_assets.study.measure import AUROC, EARLY_VS_LATE, EXTRA_DROP, FUSION_STRATEGIES

# Seed claim 1: early fusion is 2-5 AUROC points ahead (of late fusion) on complete data.
CLAIMED_EARLY_LEAD = (0.02, 0.05)
# Seed claim 1 is judged on complete cohorts (the study's "complete" availability), where
# early fusion is trained and tested on complete data.
COMPLETE = "complete"


@dataclass(frozen=True)
class Pooled:
    """A quantity pooled over cells: point, 95 % interval, cells and patients."""

    quantity: str
    point: float
    ci_low: float
    ci_high: float
    n_cells: int
    n_patients: int


def pool(replicates: pd.DataFrame, quantity: str, cells: set[str] | None = None) -> Pooled | None:
    """Pool ``quantity`` over ``cells`` (all cells that measured it when ``None``)."""
    rows = replicates[replicates["quantity"] == quantity]
    if cells is not None:
        rows = rows[rows["cell_id"].isin(cells)]
    if rows.empty:
        return None
    weights = rows["n"].to_numpy(float)
    stacked = np.stack(rows["values"].to_list())  # (cells, B)
    pooled = weights @ stacked / weights.sum()
    low, high = percentile_ci(pooled)
    point = float(weights @ rows["point"].to_numpy(float) / weights.sum())
    return Pooled(quantity, point, low, high, len(rows), int(weights.sum()))


def early_claim_verdict(p: Pooled | None) -> str:
    """Claim 1 (early fusion 2-5 points ahead on complete data), from the pooled interval."""
    if p is None:
        return "not measured (no complete cohort finished)"
    low, high = CLAIMED_EARLY_LEAD
    if p.ci_low > 0 and p.ci_high >= low:
        return "holds" if p.ci_low <= high else "holds, with a larger lead than claimed"
    if p.ci_high < low:
        if p.ci_low > 0:
            return f"does not hold: early fusion is ahead, but by less than {low:.2f}"
        return f"does not hold: the interval excludes a lead of {low:.2f} or more"
    return "inconclusive: the interval holds both no lead and the claimed lead"


def late_claim_verdict(by_strategy: dict[str, Pooled]) -> str:
    """Claim 2 (late fusion degrades least): every other strategy loses more than late."""
    if not by_strategy:
        return "not measured (no stress test finished)"
    less = [s for s, p in by_strategy.items() if p.ci_high < 0]
    more = [s for s, p in by_strategy.items() if p.ci_low > 0]
    if less:
        return f"does not hold: {', '.join(less)} degrade(s) less than late fusion"
    if len(more) == len(by_strategy):
        return "holds: every other strategy loses more AUROC than late fusion"
    open_ = sorted(set(by_strategy) - set(more))
    return f"inconclusive: late fusion degrades less than {', '.join(more) or 'none'}; " + (
        f"the interval holds 0 for {', '.join(open_)}"
    )


@dataclass
class StudyAnswer:
    cells: pd.DataFrame  # one row per finished cell, with its summary's columns
    agreement_by_rule: pd.DataFrame
    agreement_by_block: pd.DataFrame
    early_claim: Pooled | None
    early_claim_all_complete_cases: Pooled | None
    late_claim: dict[str, Pooled]
    early_verdict: str
    late_verdict: str
    agreement_rate: float


def _cell_frame(cells: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    flat = pd.json_normalize(cells["summary"].to_list()).drop(columns="recommended_reasons")
    settings = pd.json_normalize(cells["settings"].to_list())[
        [
            "n_patients",
            "availability",
            "missingness",
            "regime",
            "genomics_format",
            "genomics_features",
            "temporal",
        ]
    ]
    frame = pd.concat(
        [
            cells[["cell_id", "block", "name", "seed", "wall_seconds", "peak_rss_mib"]],
            settings,
            flat,
        ],
        axis=1,
    )
    aurocs = metrics.pivot(index="cell_id", columns="strategy", values="auroc")
    refs = [c for c in aurocs.columns if c.startswith("reference")]
    frame = frame.join(aurocs[[*FUSION_STRATEGIES]].add_prefix("auroc_"), on="cell_id")
    frame["best_reference"] = frame["cell_id"].map(aurocs[refs].max(axis=1))
    singles = [c for c in aurocs.columns if c.startswith("single:")]
    frame["best_single"] = frame["cell_id"].map(aurocs[singles].max(axis=1))
    return frame


def _agreement(frame: pd.DataFrame, by: str) -> pd.DataFrame:
    grouped = frame.groupby(by, sort=True)
    out = grouped.agg(
        cells=("cell_id", "size"),
        winner_is_recommended=(
            "winner",
            lambda w: int((w == frame.loc[w.index, "recommended"]).sum()),
        ),
        agrees=("agrees", "sum"),
    ).reset_index()
    out["agreement_rate"] = out["agrees"] / out["cells"]
    out["winners"] = out[by].map(
        lambda key: ", ".join(
            f"{s} {n}" for s, n in frame[frame[by] == key]["winner"].value_counts().items()
        )
    )
    return out


def analyze(tables: dict[str, pd.DataFrame]) -> StudyAnswer:
    """The study's answer from its tables (``study_runner.read_study``)."""
    cells, replicates = tables["cells"], tables["replicates"]
    frame = _cell_frame(cells, tables["metrics"])
    complete_cells = set(frame.loc[frame["availability"] == COMPLETE, "cell_id"])
    early = pool(replicates, EARLY_VS_LATE, complete_cells)
    early_all = pool(replicates, EARLY_VS_LATE)
    late: dict[str, Pooled] = {}
    for s in FUSION_STRATEGIES:
        pooled = pool(replicates, f"{EXTRA_DROP}{s}")
        if pooled is not None:
            late[s] = pooled
    by_rule = _agreement(frame, "recommended").rename(columns={"recommended": "rule"})
    return StudyAnswer(
        cells=frame,
        agreement_by_rule=by_rule,
        agreement_by_block=_agreement(frame, "block"),
        early_claim=early,
        early_claim_all_complete_cases=early_all,
        late_claim=late,
        early_verdict=early_claim_verdict(early),
        late_verdict=late_claim_verdict(late),
        agreement_rate=float(frame["agrees"].mean()) if len(frame) else float("nan"),
    )


# --------------------------------------------------------------------------- the report


def _ci(p: Pooled) -> str:
    return f"{p.point:+.3f} [{p.ci_low:+.3f}, {p.ci_high:+.3f}]"


def _table(frame: pd.DataFrame, floats: str = "{:.3f}") -> list[str]:
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = (
        "|"
        + "|".join(
            "---:" if pd.api.types.is_numeric_dtype(frame[c]) else "---" for c in frame.columns
        )
        + "|"
    )
    lines = [head, rule]
    for _, row in frame.iterrows():
        cells = [floats.format(v) if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def study_markdown(
    answer: StudyAnswer,
    header: list[str],
    picture: str | None,
    current: WhatIf | None = None,
) -> str:
    """The study's Markdown answer (``benchmarks/results/study.md``); ``current``: the
    decision matrix's current thresholds judged on the same cells (``what_if``)."""
    frame = answer.cells
    lines = [
        "# Study: the decision matrix against the synthetic deployment realities",
        "",
        *header,
        "",
    ]
    lines += ["## The seed claims", ""]
    e = answer.early_claim
    lines.append(
        "**Claim 1: early fusion is 2-5 AUROC points ahead (of late fusion) on complete data.** "
        + (
            f"On the complete cohorts (the `early` block: {e.n_cells} cells, {e.n_patients:,} "
            f"complete-case test patients), early minus late AUROC = {_ci(e)}: "
            f"**{answer.early_verdict}**."
            if e
            else f"**{answer.early_verdict}**."
        )
    )
    a = answer.early_claim_all_complete_cases
    if a is not None and e is not None and a.n_cells > e.n_cells:
        lines.append(
            f"On the complete-case test patients of every cell with enough of them ({a.n_cells} "
            f"cells, {a.n_patients:,} patients; models trained with modalities missing), "
            f"early minus late = {_ci(a)}."
        )
    lines += [
        "",
        "**Claim 2: late fusion degrades least as modalities go missing.** "
        "Extra AUROC lost by each strategy beyond late fusion's loss, as whole modalities "
        "are removed at random (rates 0-0.9; the loss is the AUROC at rate 0 minus the "
        "AUROC averaged over the rates), pooled over every cell:",
        "",
    ]
    for s, p in answer.late_claim.items():
        lines.append(f"- {s}: {_ci(p)} ({p.n_cells} cells, {p.n_patients:,} test patients)")
    lines += ["", f"**{answer.late_verdict}**.", ""]
    lines += ["## The decision matrix against the measured winners", ""]
    lines.append(
        f"A recommendation *agrees* when it is the measured winner among the four fusion "
        f"strategies or the paired 95 % interval of Δ(winner − recommended) holds 0. "
        f"Overall agreement: **{answer.agreement_rate:.0%}** of {len(frame)} cells."
    )
    lines += ["", "By rule (the strategy the matrix recommended):", ""]
    lines += _table(answer.agreement_by_rule, "{:.2f}")
    lines += ["", "By design block (the rule or claim the block was built to test):", ""]
    lines += _table(answer.agreement_by_block, "{:.2f}")
    if picture:
        lines += ["", f"![winner map]({picture})"]
    if current is not None and current.changed:
        lines += [
            "",
            "## The thresholds now (a change backed by these cells)",
            "",
            "The cells were recommended with the thresholds they ran with; the decision "
            "matrix's current defaults (`decision_matrix.RecommendationThresholds`: "
            + ", ".join(f"{k} {v}" for k, v in current.thresholds.items())
            + f") recommend differently in {len(current.changed)} cell(s): "
            f"{', '.join(current.changed)}. Judged on the same measured winners and paired "
            f"intervals, the agreement is **{current.agreement_rate:.0%}** of "
            f"{len(current.judged)} judged cells (as run: {answer.agreement_rate:.0%} of "
            f"{len(frame)}).",
            "",
        ]
        lines += _table(current.by_rule(), "{:.2f}")
    lines += ["", "## Every cell", ""]
    cols = [
        "block",
        "name",
        "seed",
        "n_test",
        "recommended",
        "winner",
        "delta_winner_minus_recommended",
        "delta_ci_low",
        "delta_ci_high",
        "agrees",
        "auroc_early",
        "auroc_intermediate",
        "auroc_late",
        "auroc_attention",
        "best_reference",
        "best_single",
        "oracle_auroc",
        "wall_seconds",
    ]
    shown = frame[cols].rename(
        columns={
            "delta_winner_minus_recommended": "Δ",
            "delta_ci_low": "Δ low",
            "delta_ci_high": "Δ high",
        }
    )
    shown["wall_seconds"] = shown["wall_seconds"].round(0).astype(int)
    lines += _table(shown)
    return "\n".join(lines) + "\n"


def write_answer(out_dir: Path, tables: dict[str, pd.DataFrame], header: list[str]) -> Path:
    """``<out_dir>/study.md`` and ``study.png`` from the study's tables; returns the md path."""
    answer = analyze(tables)
    picture = winner_map(answer.cells, Path(out_dir) / "study.png") if len(answer.cells) else None
    failures = tables["failures"]
    if len(failures):
        header = [
            *header,
            "",
            f"Failed cells (retried on the next run): {', '.join(failures['cell_id'])}.",
        ]
    md = Path(out_dir) / "study.md"
    current = what_if(tables)
    md.write_text(study_markdown(answer, header, picture.name if picture else None, current))
    return md


@dataclass(frozen=True)
class WhatIf:
    """Thresholds judged on the recorded cells (no retraining: the winners stay).

    ``cells`` has one row per cell with a recorded profile: the recommendation under these
    thresholds, the measured winner and ``agrees`` (True / False; None when the new
    recommendation is neither the recorded one nor the winner and the cell has no kept
    replicates to pair them: a cell recorded before they were kept)."""

    thresholds: dict
    cells: pd.DataFrame

    @property
    def judged(self) -> pd.DataFrame:
        return self.cells[self.cells["agrees"].notna()]

    @property
    def agreement_rate(self) -> float:
        judged = self.judged
        return float(judged["agrees"].astype(bool).mean()) if len(judged) else float("nan")

    @property
    def changed(self) -> list[str]:
        return self.cells.loc[self.cells["changed"], "cell_id"].tolist()

    def by_rule(self) -> pd.DataFrame:
        """Per recommended strategy: cells, judged cells, agreeing cells, rate."""
        judged = self.cells.assign(agrees_=self.cells["agrees"].map(lambda a: a is True))
        out = judged.groupby("recommended").agg(
            cells=("cell_id", "size"),
            judged=("agrees", lambda a: int(a.notna().sum())),
            agrees=("agrees_", "sum"),
        )
        out["agreement_rate"] = out["agrees"] / out["judged"].where(out["judged"] > 0)
        return out.reset_index().rename(columns={"recommended": "rule"})


def what_if(tables: dict[str, pd.DataFrame], **thresholds: float) -> WhatIf:
    """The decision matrix with ``thresholds`` (``RecommendationThresholds`` fields; the
    defaults when none) applied to each cell's recorded profile, judged against the cell's
    measured winner by the study's rule (the winner, or the paired interval of Δ holds 0)."""
    t = RecommendationThresholds(**thresholds)
    reps = tables["replicates"]
    by_cell = {
        cid: dict(zip(g["quantity"], g["values"], strict=True))
        for cid, g in reps.groupby("cell_id")
    }
    rows = []
    for cid, summary in zip(tables["cells"]["cell_id"], tables["cells"]["summary"], strict=True):
        if "profile" not in summary:
            continue
        recommended = recommend_strategies(summary["profile"], t)[0]["strategy"]
        winner, boots = summary["winner"], by_cell.get(cid, {})
        if recommended == summary["recommended"]:
            agrees = bool(summary["agrees"])
        elif recommended == winner:
            agrees = True
        elif f"{AUROC}{winner}" in boots and f"{AUROC}{recommended}" in boots:
            low, _ = percentile_ci(boots[f"{AUROC}{winner}"] - boots[f"{AUROC}{recommended}"])
            agrees = bool(low <= 0.0)
        else:
            agrees = None
        rows.append(
            {
                "cell_id": cid,
                "recommended": recommended,
                "recorded_recommendation": summary["recommended"],
                "winner": winner,
                "agrees": agrees,
                "changed": recommended != summary["recommended"],
            }
        )
    columns = ["cell_id", "recommended", "recorded_recommendation", "winner", "agrees", "changed"]
    return WhatIf(t.model_dump(), pd.DataFrame(rows, columns=columns))


def evidence(answer: StudyAnswer, current: WhatIf, commit: str) -> dict:
    """What the report's verdict cites (``study/evidence.py``): agreement per rule under the
    current thresholds (``current``, judged cells only), and the claims."""
    rules = {
        row["rule"]: {
            "cells": int(row["judged"]),
            "agrees": int(row["agrees"]),
            "agreement_rate": float(row["agreement_rate"]),
        }
        for _, row in current.by_rule().iterrows()
        if row["judged"] > 0
    }
    claims = []
    if answer.early_claim is not None:
        e = answer.early_claim
        claims.append(
            {
                "claim": "early fusion is 2-5 AUROC points ahead of late fusion on complete data",
                "verdict": answer.early_verdict,
                "evidence": f"early minus late {_ci(e)} on {e.n_patients:,} complete-case test "
                f"patients of {e.n_cells} complete cohorts",
            }
        )
    if answer.late_claim:
        parts = ", ".join(f"{s} {_ci(p)}" for s, p in answer.late_claim.items())
        n = max(p.n_patients for p in answer.late_claim.values())
        claims.append(
            {
                "claim": "late fusion degrades least as modalities go missing",
                "verdict": answer.late_verdict,
                "evidence": f"extra AUROC lost beyond late fusion's: {parts}; {n:,} test patients",
            }
        )
    return {
        "commit": commit,
        "cells": len(answer.cells),
        "agreement_rate": current.agreement_rate,
        "agreement_rate_as_run": answer.agreement_rate,
        "rules": rules,
        "claims": claims,
    }
