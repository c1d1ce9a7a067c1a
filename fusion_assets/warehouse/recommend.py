"""The fusion-strategy decision matrix, applied to a measured profile summary.

Each of the four strategies gets a score from the deployment axes (availability,
dimensionality balance, temporal dynamics, cohort size); ties are broken
towards the safer strategy (late, intermediate, early, attention).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import duckdb

STRATEGIES = ("late", "intermediate", "early", "attention")  # also the tie-break order


@dataclass(frozen=True)
class RecommendationThresholds:
    """Where the decision matrix switches.

    min_availability: a modality present for fewer patients than this is
        "frequently missing" (0.7).
    min_complete_case: fewer patients than this with every modality also means
        frequently missing (0.5).
    dim_ratio: largest / smallest modality dimensionality at or above this is a
        dimensionality gap of orders of magnitude (100).
    temporal_min_availability: a time-series modality matters for attention
        only when at least this fraction of patients has it (0.2).
    irregular_gap_cv: coefficient of variation of the gaps between samples at
        or above this is irregular cadence (0.5; 0 is a fixed cadence, 1 Poisson).
    small_cohort: fewer patients than this is a small cohort (2,000).
    early_min_complete_case: complete-case fraction needed for early fusion (0.9).
    controlled_max_sites: a cohort from at most this many sites counts as
        controlled (3).
    """

    min_availability: float = 0.7
    min_complete_case: float = 0.5
    dim_ratio: float = 100.0
    temporal_min_availability: float = 0.2
    irregular_gap_cv: float = 0.5
    small_cohort: int = 2_000
    early_min_complete_case: float = 0.9
    controlled_max_sites: int = 3


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def recommend_strategies(
    summary: dict[str, Any], thresholds: RecommendationThresholds | None = None
) -> list[dict[str, Any]]:
    """Rank all four strategies for the cohort described by ``summary``.

    ``summary`` is :func:`fusion_assets.warehouse.profile.summarize_profile`'s
    output.  Returns ``[{rank, strategy, score, reasons}]``, best first; every
    reason is a sentence with the measured number and the threshold.
    """
    t = thresholds or RecommendationThresholds()
    score = {s: 0.0 for s in STRATEGIES}
    reasons: dict[str, list[str]] = {s: [] for s in STRATEGIES}
    n = summary["n_patients"]
    avail: dict[str, float] = summary["availability"]
    complete = summary["complete_case_fraction"]

    # Axis 1: availability.
    sparse = {m: a for m, a in avail.items() if a < t.min_availability}
    missing = bool(sparse) or complete < t.min_complete_case
    score["late"] += 1.0  # the safe default: degrades gracefully
    reasons["late"].append("Safe default: combines only the modalities each patient has.")
    if missing:
        detail = ", ".join(
            f"{m} {_pct(a)}" for m, a in sorted(sparse.items(), key=lambda kv: kv[1])
        )
        sentence = (
            f"Modalities are frequently missing: complete-case fraction {_pct(complete)} "
            f"(threshold {_pct(t.min_complete_case)})"
            + (f"; below {_pct(t.min_availability)} availability: {detail}." if detail else ".")
        )
        score["late"] += 2.0
        reasons["late"].append(sentence)
        score["early"] -= 2.0
        reasons["early"].append(
            sentence + " A zero-filled absent modality looks present to early fusion."
        )
    else:
        reasons["late"].append(
            f"Every modality is available for at least {_pct(t.min_availability)} of patients and "
            f"{_pct(complete)} are complete cases, so late fusion's robustness buys little."
        )

    # Axis 2: dimensionality balance.
    dims = {m: d for m, d in summary["dimensionality"].items() if d and d > 0}
    if len(dims) >= 2:
        hi_m, lo_m = max(dims, key=dims.get), min(dims, key=dims.get)
        ratio = dims[hi_m] / dims[lo_m]
        gap = ratio >= t.dim_ratio
        sentence = (
            f"Dimensionality ranges from {dims[lo_m]:,} ({lo_m}) to {dims[hi_m]:,} ({hi_m}), "
            f"a ratio of {ratio:,.0f} (threshold {t.dim_ratio:,.0f})."
        )
        if gap:
            score["intermediate"] += 2.0
            reasons["intermediate"].append(
                sentence + " Per-modality encoders to a shared size balance it."
            )
            score["early"] -= 1.0
            reasons["early"].append(sentence + f" Concatenation lets {hi_m} swamp {lo_m}.")
        else:
            reasons["intermediate"].append(sentence + " No large gap to balance.")
    score["intermediate"] += 0.5  # a reasonable default when several modalities coexist
    reasons["intermediate"].append("Learns cross-modal interactions from shared representations.")

    # Axis 3: temporal dynamics.
    temporal = summary["temporal"]
    hit = False
    for m in temporal:
        cad = summary.get("cadence", {}).get(m) or {}
        cv = cad.get("gap_cv")
        a = avail.get(m, 0.0)
        if a >= t.temporal_min_availability and cv is not None and cv >= t.irregular_gap_cv:
            hit = True
            reasons["attention"].append(
                f"{m} is an irregular time series (gap CV {cv:.2f} >= {t.irregular_gap_cv}, median gap "
                f"{cad.get('median_gap_days') or 0:.2f} days) present for {_pct(a)} of patients "
                f"(threshold {_pct(t.temporal_min_availability)}); time-step tokens with masks fit it."
            )
        else:
            cv_text = f"{cv:.2f}" if cv is not None else "n/a"
            reasons["attention"].append(
                f"{m} is present for {_pct(a)} of patients with gap CV {cv_text}: "
                "not enough irregular temporal signal to need attention."
            )
    if not temporal:
        reasons["attention"].append("No time-series modality in the cohort.")
    if hit:
        score["attention"] += 2.0
    if n < t.small_cohort:
        score["attention"] -= 1.0
        reasons["attention"].append(
            f"Only {n:,} patients (< {t.small_cohort:,}): attention is hardest to validate."
        )

    # Axis 4: small, complete, controlled cohort -> early.
    controlled = summary.get("n_sites", 0) <= t.controlled_max_sites
    if n < t.small_cohort and complete >= t.early_min_complete_case and controlled:
        score["early"] += 3.0
        reasons["early"].append(
            f"Small ({n:,} < {t.small_cohort:,} patients), complete ({_pct(complete)} complete cases "
            f">= {_pct(t.early_min_complete_case)}) and controlled ({summary.get('n_sites', 0)} site(s) "
            f"<= {t.controlled_max_sites}) cohort: one model on concatenated inputs is simplest and strong."
        )
    else:
        reasons["early"].append(
            f"Not a small, complete, controlled cohort: {n:,} patients, {_pct(complete)} complete cases, "
            f"{summary.get('n_sites', 0)} site(s)."
        )

    order = sorted(STRATEGIES, key=lambda s: (-score[s], STRATEGIES.index(s)))
    return [
        {"rank": i + 1, "strategy": s, "score": score[s], "reasons": reasons[s]}
        for i, s in enumerate(order)
    ]


def write_recommendation(
    con: duckdb.DuckDBPyConnection,
    recommendations: list[dict[str, Any]],
    thresholds: RecommendationThresholds | None = None,
) -> None:
    """``profile.recommendation``: rank, strategy, score, reasons, thresholds used (JSON)."""
    import json

    used = json.dumps(asdict(thresholds or RecommendationThresholds()), sort_keys=True)
    con.execute("CREATE SCHEMA IF NOT EXISTS profile")
    con.execute(
        "CREATE OR REPLACE TABLE profile.recommendation "
        "(rank INTEGER, strategy VARCHAR, score DOUBLE, reasons VARCHAR[], thresholds VARCHAR)"
    )
    con.executemany(
        "INSERT INTO profile.recommendation VALUES (?, ?, ?, ?, ?)",
        [[r["rank"], r["strategy"], r["score"], r["reasons"], used] for r in recommendations],
    )
