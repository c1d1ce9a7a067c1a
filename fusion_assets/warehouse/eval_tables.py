"""The evaluation tables (schema ``eval``): each one written whole, read whole.

The predictions asset writes ``eval.predictions``, ``eval.oof_predictions``,
``eval.stress_predictions`` and ``eval.model_cost``; the report asset writes ``eval.subgroup_metrics``,
``eval.degradation``, ``eval.degradation_summary``, ``eval.complete_case`` and
``eval.cv_repeat_metrics``. A design that produces no rows for a table (the
held-out design has no out-of-fold predictions) still writes it, with its
columns and zero rows, so a stale table of an earlier design is never read as
this run's (column contracts in docs/data-contracts.md).
"""

from __future__ import annotations

from collections.abc import Mapping

import duckdb
import pandas as pd

SCHEMA = "eval"


def qualified(name: str) -> str:
    """``eval.<name>``."""
    return f"{SCHEMA}.{name}"


def write_eval_tables(con: duckdb.DuckDBPyConnection, tables: Mapping[str, pd.DataFrame]) -> None:
    """Replace ``eval.<name>`` with each frame, all in one transaction."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    con.execute("BEGIN TRANSACTION")
    try:
        for name, frame in tables.items():
            con.register("_eval_frame", frame)
            try:
                con.execute(
                    f"CREATE OR REPLACE TABLE {qualified(name)} AS SELECT * FROM _eval_frame"
                )
            finally:
                con.unregister("_eval_frame")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


def read_eval_table(con: duckdb.DuckDBPyConnection, name: str) -> pd.DataFrame:
    """``eval.<name>`` as a DataFrame."""
    return con.sql(f"SELECT * FROM {qualified(name)}").df()


def has_eval_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether ``eval.<name>`` exists (a warehouse written before the table was added lacks it)."""
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [SCHEMA, name],
    ).fetchone()
    return bool(found and found[0])


def replace_batch_rows(
    con: duckdb.DuckDBPyConnection, table: str, ddl: str, frame: pd.DataFrame, batch_id: str
) -> None:
    """Replace ``table``'s rows of ``batch_id`` with ``frame`` (columns by name) in one
    transaction, creating the table first with ``ddl``: re-running a batch is idempotent
    and a reader never sees it half-written."""
    con.execute(ddl)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"DELETE FROM {table} WHERE batch_id = ?", [batch_id])
        con.register("_batch_rows", frame)
        try:
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _batch_rows")
        finally:
            con.unregister("_batch_rows")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
