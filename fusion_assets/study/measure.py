"""What one study cell measured, read from the cell's own warehouse after its pipeline ran.

Pure code (DuckDB and numpy, no dagster). Everything is on the cell's held-out test
patients, with one label-stratified patient bootstrap per cell (``metrics/bootstrap.py``)
shared by every strategy, so each difference is paired:

- per strategy (the four fusion strategies, the references and the single-modality
  baselines): test AUROC with its 95 % interval; the oracle's AUROC on the same patients;
- the measured winner among the four fusion strategies and Δ(winner − recommended) with
  its interval: the recommendation *agrees* when it is the winner or the interval holds 0;
- the seed claims' per-cell bootstrap replicates, which ``analysis.py`` pools over cells:
  ``early_vs_late_complete`` (AUROC of early minus late on complete-case test patients)
  and ``extra_drop_vs_late:<s>`` (how much more AUROC strategy ``s`` loses than late fusion
  as whole modalities are removed at random: the ``drop`` of ``metrics/degradation.py``,
  the AUROC at rate 0 minus the AUROC averaged over the rates, per replicate).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from fusion_assets.metrics.bootstrap import (
    percentile_ci,
    stratified_bootstrap_counts,
    weighted_auroc,
)
from fusion_assets.metrics.classification import auroc
from fusion_assets.metrics.degradation import STRESS_RATES
from fusion_assets.names import ATTENTION, EARLY, INTERMEDIATE, LATE
from fusion_assets.warehouse.recommend import read_recommendation

FUSION_STRATEGIES: tuple[str, ...] = (EARLY, INTERMEDIATE, LATE, ATTENTION)
N_BOOT = 1000
# Fewer complete-case test patients (or events) than this: no complete-data comparison.
MIN_COMPLETE_CASES = 50
MIN_EVENTS = 10
EARLY_VS_LATE = "early_vs_late_complete"
EXTRA_DROP = "extra_drop_vs_late:"
AUROC = "auroc:"


@dataclass
class CellMeasurement:
    """One cell's numbers: a row of ``study.cells``, rows of ``study.strategy_metrics`` and
    the claims' bootstrap replicates (``study.replicates``)."""

    summary: dict[str, Any]
    strategies: pd.DataFrame
    # quantity -> (point estimate, (B,) bootstrap replicates, patients it is measured on)
    replicates: dict[str, tuple[float, np.ndarray, int]] = field(default_factory=dict)


def _test_patients(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.sql(
        """
        SELECT s.patient_id, p.label, a.pattern, a.n_modalities, o.oracle_prob
        FROM profile.splits s
        JOIN aligned.patients p USING (patient_id)
        JOIN profile.availability a USING (patient_id)
        JOIN raw.oracle o USING (patient_id)
        WHERE s.split = 'test'
        ORDER BY s.patient_id
        """
    ).df()


def _stress_drop(
    stress: pd.DataFrame, order: pd.Index, y: np.ndarray, weights: np.ndarray
) -> dict[str, np.ndarray]:
    """Per fusion strategy: (B,) replicates of AUROC at rate 0 minus the AUROC averaged over
    the random-removal rates (trapezoid, as ``degradation_summary``), mean over mask seeds."""
    drops: dict[str, np.ndarray] = {}
    for strategy, frame in stress.groupby("strategy", sort=True):
        curve = []
        rates = sorted(frame["rate"].unique())
        for rate in rates:
            at_rate = frame[frame["rate"] == rate]
            per_seed = []
            for _, masked in at_rate.groupby("mask_seed", sort=True):
                prob = masked.set_index("patient_id")["prob"].reindex(order).to_numpy(float)
                per_seed.append(weighted_auroc(y, prob, weights))
            curve.append(np.mean(per_seed, axis=0))
        r, a = np.asarray(rates, float), np.stack(curve)  # a: (rates, B)
        if r.size < 2 or r[0] != 0.0:
            continue
        area = np.sum(np.diff(r)[:, None] * (a[1:] + a[:-1]) / 2.0, axis=0) / (r[-1] - r[0])
        drops[str(strategy)] = a[0] - area
    return drops


def measure_cell(
    con: duckdb.DuckDBPyConnection, cell_id: str, n_boot: int = N_BOOT
) -> CellMeasurement:
    """Read the finished pipeline's tables of one cell and compute its numbers (module doc)."""
    patients = _test_patients(con)
    order = pd.Index(patients["patient_id"])
    y = patients["label"].to_numpy(int)
    n_modalities = int(patients["n_modalities"].max())
    complete = (patients["n_modalities"] == n_modalities).to_numpy()
    seed = zlib.crc32(cell_id.encode())  # a fixed bootstrap per cell, different between cells
    counts = stratified_bootstrap_counts(y, n_boot, seed).astype(np.float64)

    test = con.sql(
        "SELECT strategy, patient_id, prob FROM eval.predictions WHERE split = 'test'"
    ).df()
    probs = {
        str(s): frame.set_index("patient_id")["prob"].reindex(order).to_numpy(float)
        for s, frame in test.groupby("strategy", sort=True)
    }
    probs["oracle"] = patients["oracle_prob"].to_numpy(float)
    boots = {s: weighted_auroc(y, p, counts) for s, p in probs.items()}
    rows = []
    for s, p in probs.items():
        low, high = percentile_ci(boots[s])
        rows.append({"strategy": s, "auroc": auroc(y, p), "ci_low": low, "ci_high": high})
    strategies = pd.DataFrame(rows)
    point = strategies.set_index("strategy")["auroc"]

    fused = [s for s in FUSION_STRATEGIES if s in probs]
    winner = max(fused, key=lambda s: point[s])
    ranking = read_recommendation(con)
    recommended = ranking[0]["strategy"]
    delta = boots[winner] - boots[recommended]
    d_low, d_high = percentile_ci(delta)
    agrees = recommended == winner or d_low <= 0.0

    # Each fusion strategy's AUROC replicates: any paired difference can be formed later
    # (``analysis.what_if`` judges other thresholds' recommendations on the same cells).
    replicates: dict[str, tuple[float, np.ndarray, int]] = {
        f"{AUROC}{s}": (float(point[s]), boots[s], int(y.size)) for s in fused
    }
    complete_events = int(y[complete].sum())
    n_complete = int(complete.sum())
    if (
        n_complete >= MIN_COMPLETE_CASES
        and MIN_EVENTS <= complete_events <= n_complete - MIN_EVENTS
        and EARLY in probs
        and LATE in probs
    ):
        yc, early, late = y[complete], probs[EARLY][complete], probs[LATE][complete]
        cc = stratified_bootstrap_counts(yc, n_boot, seed + 1).astype(np.float64)
        replicates[EARLY_VS_LATE] = (
            auroc(yc, early) - auroc(yc, late),
            weighted_auroc(yc, early, cc) - weighted_auroc(yc, late, cc),
            n_complete,
        )

    stress = con.sql(
        "SELECT strategy, rate, mask_seed, patient_id, prob FROM eval.stress_predictions "
        f"WHERE scenario = 'global' AND strategy IN {tuple(fused)!r}"
    ).df()
    stress = stress[stress["rate"].isin(STRESS_RATES)]
    drops = _stress_drop(stress, order, y, counts)
    point_drops = _stress_drop(stress, order, y, np.ones((y.size, 1)))
    if LATE in drops:
        for s in fused:
            if s != LATE and s in drops:
                replicates[f"{EXTRA_DROP}{s}"] = (
                    float(point_drops[s][0] - point_drops[LATE][0]),
                    drops[s] - drops[LATE],
                    int(y.size),
                )

    summary = {
        "n_test": int(y.size),
        "n_test_events": int(y.sum()),
        "n_test_complete": n_complete,
        "n_test_complete_events": complete_events,
        "recommended": recommended,
        "recommended_reasons": " ".join(list(ranking[0]["reasons"])),
        "ranking": ",".join(r["strategy"] for r in ranking),
        "winner": winner,
        "winner_auroc": float(point[winner]),
        "recommended_auroc": float(point[recommended]),
        "delta_winner_minus_recommended": float(point[winner] - point[recommended]),
        "delta_ci_low": d_low,
        "delta_ci_high": d_high,
        "agrees": bool(agrees),
        "oracle_auroc": float(point["oracle"]),
        "drop": {s: float(d[0]) for s, d in point_drops.items()},
    }
    return CellMeasurement(summary=summary, strategies=strategies, replicates=replicates)
