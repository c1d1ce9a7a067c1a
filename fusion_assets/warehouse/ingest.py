"""Load a validated landing batch into the ``raw`` schema in one transaction."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa_arrow

from fusion_assets.cohorts.spec import CohortSpec
from fusion_assets.warehouse import schemas
from fusion_assets.warehouse.quarantine import (
    BatchValidationError,
    quarantine_batch,
)
from fusion_assets.warehouse.sql import qident, table_columns
from fusion_assets.warehouse.validate import FileCheck, validate_batch

RAW = "raw"
LEDGER = "raw.batches"

# Fixed column types of the non-modality tables (data-contracts §1).
_PATIENTS_TYPES = {
    "patient_id": "VARCHAR",
    "index_time": "TIMESTAMP",
    "label": "INTEGER",
    "sex": "VARCHAR",
    "age": "INTEGER",
    "site": "VARCHAR",
}
_ORACLE_TYPES = {"patient_id": "VARCHAR", "oracle_prob": "DOUBLE"}
# An all-null payload column (arrow type "null") takes the type the raw table
# already has for it, else DOUBLE.
_UNTYPED = "NULL"


@dataclass
class IngestResult:
    """What one ``ingest_batch`` call loaded."""

    batch_id: str
    rows: dict[str, int] = field(default_factory=dict)  # rows inserted per raw table
    files_read: list[str] = field(default_factory=list)
    orphan_rows: dict[str, int] = field(default_factory=dict)  # skipped: patient unknown
    ignored_files: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _column_types(check: FileCheck) -> dict[str, str]:
    """DuckDB type of every column ingest keeps from one file."""
    fs = check.schema
    assert fs is not None and check.arrow_schema is not None
    if fs.table == "patients":
        return dict(_PATIENTS_TYPES)
    if fs.table == "oracle":
        return dict(_ORACLE_TYPES)
    spec = fs.modality
    assert spec is not None
    types = {schemas.PATIENT_KEY: "VARCHAR"}
    if spec.timed:
        types[schemas.EVENT_TIME] = "TIMESTAMP"
    for name in fs.scalar_columns:
        if name in types:
            continue
        typ = check.arrow_schema.field(name).type
        if name in fs.raw_types:
            types[name] = fs.raw_types[name]
        elif pa_arrow.types.is_null(typ):
            types[name] = _UNTYPED  # resolved against the existing table in _insert_file
        elif pa_arrow.types.is_string(typ) or pa_arrow.types.is_large_string(typ):
            types[name] = "VARCHAR"
        else:
            types[name] = "DOUBLE"
    for rule in fs.lists:
        types[rule.column] = "FLOAT[]"
    return types


def _select_expr(name: str, sql_type: str, arrow_schema: pa_arrow.Schema) -> str:
    col = qident(name)
    if sql_type == "TIMESTAMP":
        typ = arrow_schema.field(name).type
        if pa_arrow.types.is_timestamp(typ) and typ.tz is not None:
            # Store every time as naive UTC so comparisons never depend on the session zone.
            return f"timezone('UTC', {col}) AS {col}"
    return f"CAST({col} AS {sql_type}) AS {col}"


def _ensure_table(con: duckdb.DuckDBPyConnection, table: str, types: dict[str, str]) -> None:
    """Create ``raw.<table>`` or add columns a later batch introduces."""
    cols = ", ".join(f"{qident(n)} {t}" for n, t in types.items())
    con.execute(f"CREATE TABLE IF NOT EXISTS {RAW}.{qident(table)} ({cols}, batch_id VARCHAR)")
    existing = table_columns(con, RAW, table)
    for name, typ in types.items():
        if name not in existing:
            con.execute(f"ALTER TABLE {RAW}.{qident(table)} ADD COLUMN {qident(name)} {typ}")


def _insert_file(
    con: duckdb.DuckDBPyConnection, check: FileCheck, batch_id: str, known_only: bool
) -> int:
    """Insert one file with DuckDB's parquet reader; returns rows inserted.

    ``known_only`` keeps only patients present in ``raw.patients`` (this batch
    or an earlier one); the caller reports the rest as orphans.
    """
    assert check.schema is not None and check.arrow_schema is not None
    table = check.schema.table
    types = _column_types(check)
    existing = table_columns(con, RAW, table)
    types = {n: (existing.get(n, "DOUBLE") if t == _UNTYPED else t) for n, t in types.items()}
    _ensure_table(con, table, types)
    exprs = ", ".join(_select_expr(n, t, check.arrow_schema) for n, t in types.items())
    where = "WHERE patient_id IN (SELECT patient_id FROM raw.patients)" if known_only else ""
    sql = f"""
        INSERT INTO {RAW}.{qident(table)} BY NAME
        SELECT * FROM (SELECT {exprs}, ?::VARCHAR AS batch_id FROM read_parquet(?)) {where}
    """
    row = con.execute(sql, [batch_id, str(check.path)]).fetchall()[0]
    return int(row[0]) if row else 0


def _raw_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database() "
        "AND table_schema = ? AND table_name <> 'batches'",
        [RAW],
    ).fetchall()
    return [r[0] for r in rows]


def _record_batch(con: duckdb.DuckDBPyConnection, result: IngestResult) -> None:
    """Ledger row; re-loading a batch keeps its original sequence number.

    ``seq`` orders batches for "latest batch wins" in align.
    """
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {LEDGER} (batch_id VARCHAR, seq BIGINT, "
        "first_ingested_at TIMESTAMP, rows_json VARCHAR)"
    )
    found = con.execute(
        f"SELECT seq, first_ingested_at FROM {LEDGER} WHERE batch_id = ?", [result.batch_id]
    ).fetchall()
    prev = (
        found[0]
        if found
        else con.execute(
            f"SELECT coalesce(max(seq), 0) + 1, now()::TIMESTAMP FROM {LEDGER}"
        ).fetchall()[0]
    )
    con.execute(f"DELETE FROM {LEDGER} WHERE batch_id = ?", [result.batch_id])
    con.execute(
        f"INSERT INTO {LEDGER} VALUES (?, ?, ?, ?)",
        [result.batch_id, prev[0], prev[1], json.dumps(result.rows, sort_keys=True)],
    )


def ingest_batch(
    con: duckdb.DuckDBPyConnection,
    batch_dir: Path,
    spec: CohortSpec,
    batch_id: str | None = None,
) -> IngestResult:
    """Validate every file of ``batch_dir``, then load it into ``raw`` atomically.

    Raises :class:`BatchValidationError` after moving the batch to
    ``<landing>/_quarantine/<batch_id>/`` (with ``errors.json``) when any file
    fails; nothing is written to the warehouse in that case.  Re-loading a batch
    replaces its rows, so loading it twice changes nothing.
    """
    start = time.perf_counter()
    batch_dir = Path(batch_dir)
    batch_id = batch_id or batch_dir.name
    plan = validate_batch(batch_dir, spec)
    if plan.errors:
        where = quarantine_batch(batch_dir, batch_id, plan.errors)
        raise BatchValidationError(batch_id, plan.errors, where)

    result = IngestResult(batch_id=batch_id, ignored_files=plan.ignored_files)
    # patients first: modality rows are filtered against raw.patients.
    ordered = sorted(plan.files, key=lambda c: (c.schema.table != "patients", c.path.name))
    con.begin()
    try:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW}")
        for table in _raw_tables(con):
            con.execute(f"DELETE FROM {RAW}.{qident(table)} WHERE batch_id = ?", [batch_id])
        for check in ordered:
            table = check.schema.table
            inserted = _insert_file(con, check, batch_id, known_only=table != "patients")
            result.rows[table] = inserted
            result.files_read.append(check.path.name)
            if check.n_rows > inserted:
                result.orphan_rows[table] = check.n_rows - inserted
        _record_batch(con, result)
        con.commit()
    except BaseException:
        con.rollback()
        raise
    result.seconds = round(time.perf_counter() - start, 3)
    return result
