"""Patient-level train/validation/test splits, stratified and stable as the cohort grows."""

from __future__ import annotations

import hashlib
from typing import Any

import duckdb
import pandas as pd

from fusion_assets.warehouse.sql import table_exists

SPLITS = ("train", "validation", "test")


def _seeded_hash(seed: int, patient_id: str) -> int:
    """Stable across processes and library versions (unlike Python's or DuckDB's hash)."""
    return int.from_bytes(
        hashlib.blake2b(f"{seed}:{patient_id}".encode(), digest_size=8).digest(), "big"
    )


def _assign_stratum(
    new_ids: list[str], existing: dict[str, int], fractions: tuple[float, ...]
) -> list[str]:
    """Give each new patient (already in seeded-hash order) the split furthest below target.

    Starting from the stratum's existing counts, each patient goes to the split
    whose count lags its target share of the running total the most; ties go to
    the earlier split.  One patient -> train; two -> train + validation; large
    strata converge to the fractions, and a grown stratum is pulled back to them.
    """
    counts = [existing.get(s, 0) for s in SPLITS]
    total = sum(counts)
    out = []
    for _ in new_ids:
        total += 1
        deficits = [f * total - c for f, c in zip(fractions, counts, strict=True)]
        k = max(range(len(SPLITS)), key=lambda i: (deficits[i], -i))
        counts[k] += 1
        out.append(SPLITS[k])
    return out


def assign_splits(
    con: duckdb.DuckDBPyConnection,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
) -> dict[str, Any]:
    """Create or extend ``profile.splits`` (``patient_id``, ``split``).

    Strata are label x availability pattern from ``profile.availability``.
    Patients already in ``profile.splits`` keep their split; new ones are
    assigned within their stratum in seeded-hash order so the stratum stays near
    ``fractions``.  Returns counts for metadata.
    """
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-9 or min(fractions) < 0:
        raise ValueError(
            f"fractions must be three non-negative shares summing to 1, got {fractions}."
        )
    cohort = con.execute("SELECT patient_id, label, pattern FROM profile.availability").df()
    con.execute("CREATE SCHEMA IF NOT EXISTS profile")
    if table_exists(con, "profile", "splits"):
        old = con.execute("SELECT patient_id, split FROM profile.splits").df()
    else:
        old = pd.DataFrame({"patient_id": pd.Series(dtype=str), "split": pd.Series(dtype=str)})
    known = dict(zip(old["patient_id"], old["split"], strict=True))

    cohort["split"] = cohort["patient_id"].map(known)
    cohort["order"] = [_seeded_hash(seed, p) for p in cohort["patient_id"]]
    new_rows = []
    for _, stratum in cohort.groupby(["label", "pattern"], sort=True):
        existing = stratum["split"].value_counts().to_dict()
        fresh = stratum[stratum["split"].isna()].sort_values(["order", "patient_id"])
        if len(fresh):
            new_rows.append(
                pd.DataFrame(
                    {
                        "patient_id": fresh["patient_id"],
                        "split": _assign_stratum(fresh["patient_id"].tolist(), existing, fractions),
                    }
                )
            )
    added = pd.concat(new_rows, ignore_index=True) if new_rows else old.iloc[0:0]
    # Patients no longer in the cohort keep their row: a split, once given, is never reused.
    result = pd.concat([old, added], ignore_index=True)
    con.register("_new_splits", result)
    try:
        con.execute(
            "CREATE OR REPLACE TABLE profile.splits AS "
            "SELECT CAST(patient_id AS VARCHAR) AS patient_id, CAST(split AS VARCHAR) AS split "
            "FROM _new_splits ORDER BY patient_id"
        )
    finally:
        con.unregister("_new_splits")
    counts = result["split"].value_counts().to_dict()
    return {
        "n_patients": len(result),
        "kept": len(old),
        "added": len(added),
        "per_split": {s: int(counts.get(s, 0)) for s in SPLITS},
        "seed": seed,
        "fractions": list(fractions),
    }
