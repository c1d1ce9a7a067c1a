"""``eval.risk_scores``: the champion's probability for every patient of a landing batch.

What scoring reads (the batch's patients, their aligned rows, the training split's
availability patterns, the report's per-pattern AUROC) and the table it writes, one
transaction per batch (a re-run replaces the batch's rows; a reader sees the old rows
or the new ones, never a mix).
"""

from __future__ import annotations

import duckdb
import pandas as pd

from fusion_assets.cohorts import CohortSpec
from fusion_assets.warehouse.batch_inputs import BATCH_IDS_SQL, TRAIN_IDS_SQL, presence
from fusion_assets.warehouse.eval_tables import replace_batch_rows
from fusion_assets.warehouse.sql import table_exists

RISK_TABLE = "eval.risk_scores"

_DDL = f"""
CREATE SCHEMA IF NOT EXISTS eval;
CREATE TABLE IF NOT EXISTS {RISK_TABLE} (
    batch_id VARCHAR, patient_id VARCHAR, index_time TIMESTAMP, prob DOUBLE,
    model_name VARCHAR, strategy VARCHAR, model_version INTEGER, pattern VARCHAR,
    n_training_pattern INTEGER, pattern_support VARCHAR, flagged BOOLEAN,
    pattern_auroc DOUBLE, pattern_auroc_ci_low DOUBLE, pattern_auroc_ci_high DOUBLE,
    auroc_subgroup VARCHAR, scored_at TIMESTAMP, dagster_run_id VARCHAR
)"""


def read_scoring_batch(
    con: duckdb.DuckDBPyConnection, spec: CohortSpec, batch_id: str
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """(patients: patient_id, index_time, pattern; their aligned rows per modality)."""
    patients = presence(con, spec, BATCH_IDS_SQL, [batch_id])
    times = con.execute(
        f"SELECT patient_id, index_time FROM aligned.patients WHERE patient_id IN ({BATCH_IDS_SQL})",
        [batch_id],
    ).df()
    patients = patients.merge(times, on="patient_id", how="left")
    frames = {
        m: con.execute(
            f'SELECT * FROM aligned."{m}" WHERE patient_id IN ({BATCH_IDS_SQL})', [batch_id]
        ).df()
        for m in spec.modality_names
        if table_exists(con, "aligned", m)
    }
    return patients, frames


def read_training_patterns(con: duckdb.DuckDBPyConnection, spec: CohortSpec) -> pd.Series:
    """The availability pattern of every training-split patient (empty before any split)."""
    if not table_exists(con, "profile", "splits"):
        return pd.Series(dtype=str)
    return presence(con, spec, TRAIN_IDS_SQL, [])["pattern"]


def read_pattern_metrics(con: duckdb.DuckDBPyConnection) -> pd.DataFrame | None:
    """The report's availability-pattern rows of ``eval.subgroup_metrics`` (None: no report)."""
    if not table_exists(con, "eval", "subgroup_metrics"):
        return None
    return con.execute(
        "SELECT strategy, subgroup_type, subgroup, auroc, auroc_ci_low, auroc_ci_high, suppressed "
        "FROM eval.subgroup_metrics WHERE subgroup_type = 'pattern'"
    ).df()


def write_risk_scores(
    con: duckdb.DuckDBPyConnection, table: pd.DataFrame, batch_id: str, run_id: str
) -> None:
    """Replace the batch's rows in one transaction."""
    out = table.assign(scored_at=pd.Timestamp.now("UTC").tz_localize(None), dagster_run_id=run_id)
    replace_batch_rows(con, RISK_TABLE, _DDL, out, batch_id)
