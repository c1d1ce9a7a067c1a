"""Score the pipeline's strategies and the baselines with the pipeline's own evaluation.

The baselines' predictions join the pipeline's (``eval.predictions`` and, in
cross-validation, ``eval.oof_predictions``) and go through
``fusion_assets.metrics.subgroups.subgroup_table`` with the report's settings:
per-repeat metrics averaged over repeats, one label-stratified bootstrap shared
by every strategy (paired), the held-out test split in held-out mode. The
pipeline's own rows are taken from ``eval.subgroup_metrics``; recomputing them
here must give the same AUROC and interval (``consistent``), which shows the
baselines were scored exactly as the strategies were.

Calibration-slope intervals come from the subgroup table too
(``cal_slope_ci_low``/``_high``: the slope refitted in every resample, the same
resamples as the AUROC, averaged over repeats), so the pipeline's rows and the
baselines' are computed by the same code; they are part of ``consistent``. A
warehouse written before the table had them (``--skip-pipeline`` on an old run)
takes the recomputed pipeline rows instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fusion_assets.metrics.bootstrap import percentile_ci
from fusion_assets.metrics.config import EvaluationConfig
from fusion_assets.metrics.subgroups import SubgroupResult, subgroup_table
from real_cohorts.baselines import BASELINES
from real_cohorts.readout import PipelineRun

FUSED = ("early", "intermediate", "late", "attention")
# Issue 11, "Done when".
AUROC_TOLERANCE = 0.005
SLOPE_RANGE = (0.8, 1.25)
# Recomputed from the predictions, these must equal the pipeline's own table.
_CONSISTENT_COLUMNS = [
    "auroc", "auroc_ci_low", "auroc_ci_high", "cal_slope", "cal_slope_ci_low", "cal_slope_ci_high",
]  # fmt: skip
_ROW_COLUMNS = [
    "strategy", "n", "events", "auroc", "auroc_ci_low", "auroc_ci_high",
    "cal_slope", "cal_slope_ci_low", "cal_slope_ci_high", "cal_intercept", "brier",
]  # fmt: skip


@dataclass
class CohortScore:
    """All-patients rows per strategy (pipeline and baselines) and the issue's gaps."""

    rows: pd.DataFrame  # _ROW_COLUMNS + source
    gaps: dict[str, dict] = field(default_factory=dict)
    consistent: bool | None = None  # recomputed pipeline AUROCs equal eval.subgroup_metrics
    best_single_by_validation: str | None = None


def _all_rows(result: SubgroupResult) -> pd.DataFrame:
    t = result.table
    return t[(t["subgroup_type"] == "all")].set_index("strategy")


def _consistent(recomputed: pd.DataFrame, recorded: pd.DataFrame) -> bool:
    cols = [c for c in _CONSISTENT_COLUMNS if c in recorded.columns]
    mine = recomputed.loc[recorded.index, cols].to_numpy(dtype=float)
    return bool(np.allclose(mine, recorded[cols].to_numpy(dtype=float), atol=1e-9, equal_nan=True))


def score_cohort(
    run: PipelineRun,
    baseline_predictions: pd.DataFrame,
    baseline_oof: pd.DataFrame | None,
    config: EvaluationConfig,
) -> CohortScore:
    """Metrics for every strategy and baseline on the all-patients subgroup, and the gaps."""
    predictions = pd.concat(
        [p for p in (run.predictions, baseline_predictions) if p is not None], ignore_index=True
    )
    repeats = None
    if run.mode == "cv":
        repeats = pd.concat(
            [p for p in (run.oof, baseline_oof) if p is not None], ignore_index=True
        )
    result = subgroup_table(predictions, run.patients, config, repeats=repeats)
    table = _all_rows(result)
    recorded = run.subgroup_all.set_index("strategy") if run.subgroup_all is not None else None
    # A table written before it had calibration intervals: the recomputed rows serve.
    own = recorded is not None and "cal_slope_ci_low" in recorded.columns
    rows = []
    for s in table.index:
        source = recorded if own and s in recorded.index else table
        row = {c: source.loc[s, c] for c in _ROW_COLUMNS if c != "strategy"}
        row["strategy"] = s
        row["source"] = "baseline" if s in BASELINES else "pipeline"
        rows.append(row)
    frame = pd.DataFrame(rows)[[*_ROW_COLUMNS, "source"]]
    frame = frame.sort_values("auroc", ascending=False, ignore_index=True)
    score = CohortScore(frame, best_single_by_validation=result.best_single)
    if recorded is not None:
        score.consistent = _consistent(table, recorded)
        score.gaps = _gaps(frame, result, run.recommended, config.ci_level)
    return score


def _paired(result: SubgroupResult, a: str, b: str, level: float) -> dict:
    boot = result.boot_auroc[("all", "all")]
    table = _all_rows(result)
    lo, hi = percentile_ci(boot[a] - boot[b], level)
    return {
        "a": a,
        "b": b,
        "delta": float(table.loc[a, "auroc"] - table.loc[b, "auroc"]),
        "ci_low": lo,
        "ci_high": hi,
    }


def _slope_ok(row: pd.Series) -> bool:
    lo, hi, point = row["cal_slope_ci_low"], row["cal_slope_ci_high"], row["cal_slope"]
    return bool((lo <= 1.0 <= hi) or (SLOPE_RANGE[0] <= point <= SLOPE_RANGE[1]))


def _gaps(
    frame: pd.DataFrame, result: SubgroupResult, recommended: str | None, level: float
) -> dict:
    """Issue 11's "Done when" on this cohort: best vs baselines, calibration, fused vs single."""
    by = frame.set_index("strategy")
    pipeline = by[by["source"] == "pipeline"]
    strategies = pipeline[~pipeline.index.str.startswith("single:")]
    singles = pipeline[pipeline.index.str.startswith("single:")]
    fused = strategies[strategies.index.isin(FUSED)]
    best = str(strategies["auroc"].idxmax())
    baseline = str(by.loc[list(BASELINES), "auroc"].idxmax())
    gaps: dict[str, dict] = {
        "best_vs_baseline": {
            **_paired(result, best, baseline, level),
            "met": bool(by.loc[best, "auroc"] >= by.loc[baseline, "auroc"] - AUROC_TOLERANCE),
        }
    }
    for role, name in (("best", best), ("recommended", recommended)):
        if name in by.index:
            gaps[f"{role}_calibration"] = {
                "strategy": name,
                "cal_slope": float(by.loc[name, "cal_slope"]),
                "ci_low": float(by.loc[name, "cal_slope_ci_low"]),
                "ci_high": float(by.loc[name, "cal_slope_ci_high"]),
                "met": _slope_ok(by.loc[name]),
            }
    if len(fused) and len(singles):
        best_fused, best_single = str(fused["auroc"].idxmax()), str(singles["auroc"].idxmax())
        gaps["fused_vs_single"] = {
            **_paired(result, best_fused, best_single, level),
            "met": bool(
                by.loc[best_fused, "auroc"] >= by.loc[best_single, "auroc"] - AUROC_TOLERANCE
            ),
        }
    return gaps
