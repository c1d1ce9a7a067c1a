"""``profile.splits`` in the warehouse: read, write, and extend it as the cohort grows.

The assignment itself (seeded, stratified by label x availability pattern) is
pure code in ``fusion_assets.evaluation.assignment``; this module is its SQL.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pandas as pd

from fusion_assets.evaluation.assignment import assign_splits as assign_split_frame
from fusion_assets.evaluation.assignment import check_fractions
from fusion_assets.warehouse.sql import table_exists


def read_stratification_cohort(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """``patient_id, label, pattern`` of every profiled patient (the strata of split and folds)."""
    return con.execute("SELECT patient_id, label, pattern FROM profile.availability").df()


def read_splits(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """``patient_id, split`` given so far (no rows before the first split)."""
    if table_exists(con, "profile", "splits"):
        return con.execute("SELECT patient_id, split FROM profile.splits").df()
    return pd.DataFrame({"patient_id": pd.Series(dtype=str), "split": pd.Series(dtype=str)})


def write_splits(con: duckdb.DuckDBPyConnection, splits: pd.DataFrame) -> None:
    """Replace ``profile.splits`` (``patient_id``, ``split``)."""
    con.execute("CREATE SCHEMA IF NOT EXISTS profile")
    con.register("_new_splits", splits)
    try:
        con.execute(
            "CREATE OR REPLACE TABLE profile.splits AS "
            "SELECT CAST(patient_id AS VARCHAR) AS patient_id, CAST(split AS VARCHAR) AS split "
            "FROM _new_splits ORDER BY patient_id"
        )
    finally:
        con.unregister("_new_splits")


def assign_splits(
    con: duckdb.DuckDBPyConnection,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
) -> dict[str, Any]:
    """Create or extend ``profile.splits``: patients already split keep their split.

    Strata are label x availability pattern from ``profile.availability``; see
    :func:`fusion_assets.evaluation.assignment.assign_splits`. Returns counts for metadata.
    """
    check_fractions(fractions)
    cohort = read_stratification_cohort(con)
    splits, counts = assign_split_frame(cohort, read_splits(con), seed, fractions)
    write_splits(con, splits)
    return counts


def split_prevalence(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Patients and label prevalence per split (metadata; no identifiers)."""
    return con.sql(
        "SELECT split, count(*) AS patients, round(avg(a.label), 3) AS prevalence "
        "FROM profile.splits s JOIN profile.availability a USING (patient_id) "
        "GROUP BY split ORDER BY split"
    ).df()
