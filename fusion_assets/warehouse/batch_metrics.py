"""``eval.batch_metrics``: the long-format results of every batch re-evaluation."""

from __future__ import annotations

import duckdb
import pandas as pd

from fusion_assets.warehouse.eval_tables import replace_batch_rows

RESULT_TABLE = "eval.batch_metrics"

_RESULT_DDL = f"""
CREATE SCHEMA IF NOT EXISTS eval;
CREATE TABLE IF NOT EXISTS {RESULT_TABLE} (
    batch_id VARCHAR, strategy VARCHAR, kind VARCHAR, metric VARCHAR, subgroup VARCHAR,
    value DOUBLE, suppressed BOOLEAN, reference DOUBLE, reference_low DOUBLE,
    reference_high DOUBLE, flagged BOOLEAN, evaluated_at TIMESTAMP, dagster_run_id VARCHAR,
    ci_low DOUBLE, ci_high DOUBLE, model_version INTEGER
);
-- Tables written before the batch's own interval and the model version were recorded.
ALTER TABLE {RESULT_TABLE} ADD COLUMN IF NOT EXISTS ci_low DOUBLE;
ALTER TABLE {RESULT_TABLE} ADD COLUMN IF NOT EXISTS ci_high DOUBLE;
ALTER TABLE {RESULT_TABLE} ADD COLUMN IF NOT EXISTS model_version INTEGER"""


def write_batch_metrics(
    con: duckdb.DuckDBPyConnection, table: pd.DataFrame, batch_id: str, run_id: str
) -> None:
    """Replace the batch's rows in one transaction (re-running a batch is idempotent)."""
    out = table.assign(
        evaluated_at=pd.Timestamp.now("UTC").tz_localize(None), dagster_run_id=run_id
    )
    replace_batch_rows(con, RESULT_TABLE, _RESULT_DDL, out, batch_id)
