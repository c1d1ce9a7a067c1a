"""Leakage check: no honest model beats the Bayes-optimal oracle.

The synthetic cohort's ``oracle_prob`` is the best possible probability given
the modalities a patient has, so the oracle's AUROC on a subgroup is a ceiling.
A row (strategy × subgroup) is flagged when both

1. the lower end of the strategy's own AUROC interval lies above the oracle's
   point AUROC plus ``margin`` (``auroc_ci_low > oracle_auroc + margin``), and
2. where the paired interval exists, the lower end of the paired
   ΔAUROC(strategy − oracle) interval is above ``margin`` too,

and the row has at least ``min_class_count`` events and non-events. Sampling
noise alone rarely satisfies both; label leakage (post-index rows reaching the
features, label-derived columns) does, by a wide margin.

Why both and why the count floor: on a subgroup with a handful of events the
oracle's own AUROC is itself noisy, and an honest model can beat it on those
few patients (condition 1 alone fired on a 35-patient, 3-event pattern in
testing). Condition 2 accounts for the oracle's noise by pairing; the floor
keeps percentile intervals away from cells where they mean little. A real leak
shows up in the ``all`` subgroup, which always passes the floor.
"""

from __future__ import annotations

import pandas as pd

from fusion_assets.disclosure import count_text

LEAK_COLUMNS = [
    "subgroup_type",
    "subgroup",
    "strategy",
    "n",
    "auroc",
    "auroc_ci_low",
    "oracle_auroc",
    "excess",
]


def leakage_flags(
    table: pd.DataFrame, margin: float = 0.0, min_class_count: int = 10
) -> pd.DataFrame:
    """Rows of the subgroup table that beat the oracle beyond their CI (rule in module doc).

    ``table`` needs ``auroc``, ``auroc_ci_low``, ``oracle_auroc``, ``events``, ``n``
    and optionally ``delta_auroc_vs_oracle_ci_low``. Rows with a NaN oracle (real
    cohorts) or suppressed rows never flag. Returns the flagged rows with
    ``excess = auroc - oracle_auroc`` (empty if none).
    """
    missing = {"auroc", "auroc_ci_low", "oracle_auroc", "events", "n"} - set(table.columns)
    if missing:
        raise ValueError(f"subgroup table lacks column(s) {sorted(missing)} for the leakage check.")
    enough = (table["events"] >= min_class_count) & (
        table["n"] - table["events"] >= min_class_count
    )
    hit = (table["auroc_ci_low"] > table["oracle_auroc"] + margin) & enough
    if "delta_auroc_vs_oracle_ci_low" in table.columns:
        paired = table["delta_auroc_vs_oracle_ci_low"]
        hit &= (paired > margin) | paired.isna()
    out = table.loc[hit.fillna(False)].copy()
    out["excess"] = out["auroc"] - out["oracle_auroc"]
    return out[LEAK_COLUMNS].reset_index(drop=True)


def describe_leaks(flags: pd.DataFrame) -> str:
    """One line per flagged row, for an asset check's failure message."""
    if flags.empty:
        return "No strategy exceeds the oracle AUROC beyond its confidence interval."
    lines = [
        f"{r.strategy} on {r.subgroup_type}={r.subgroup} (n={count_text(r.n)}): "
        f"AUROC {r.auroc:.3f}, "
        f"CI lower bound {r.auroc_ci_low:.3f} > oracle {r.oracle_auroc:.3f}; "
        "check for post-index-time data or label-derived features."
        for r in flags.itertuples()
    ]
    return "\n".join(lines)
