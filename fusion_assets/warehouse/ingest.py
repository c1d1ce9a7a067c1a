"""Load a validated landing batch into the ``raw`` schema in one transaction."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa_arrow

from fusion_assets.cohorts.spec import CohortSpec
from fusion_assets.identifiers import check_batch_id
from fusion_assets.landing_zone import (
    READY_MARKER,
    BatchNotReady,
    drop_replaced,
    manifest_gaps,
    read_manifest,
    unlisted_files,
)
from fusion_assets.warehouse.quarantine import (
    BatchValidationError,
    quarantine_batch,
)
from fusion_assets.warehouse.raw_types import RAW, UNTYPED, column_types, type_drift_errors
from fusion_assets.warehouse.sql import qident, table_columns
from fusion_assets.warehouse.validate import FileCheck, validate_batch

IMPORT_REPORT = "import_report.json"  # written by the importer (cohorts/importer.py)
_MAX_REPORT_BYTES = 1_000_000

LEDGER = "raw.batches"


@dataclass
class IngestResult:
    """What one ``ingest_batch`` call loaded."""

    batch_id: str
    rows: dict[str, int] = field(default_factory=dict)  # rows inserted per raw table
    files_read: list[str] = field(default_factory=list)
    orphan_rows: dict[str, int] = field(default_factory=dict)  # skipped: patient unknown
    ignored_files: list[str] = field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


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
    types = column_types(check)
    existing = table_columns(con, RAW, table)
    types = {n: (existing.get(n, "DOUBLE") if t == UNTYPED else t) for n, t in types.items()}
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


def _record_batch(
    con: duckdb.DuckDBPyConnection, result: IngestResult, import_report: str | None
) -> None:
    """Ledger row; re-loading a batch keeps its original sequence number.

    ``seq`` orders batches for "latest batch wins" in align; ``import_report`` is the
    batch's ``import_report.json`` (the importer's notes and decisions, e.g. ages left
    out because they were not in years), for the evaluation to read.
    """
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {LEDGER} (batch_id VARCHAR, seq BIGINT, "
        "first_ingested_at TIMESTAMP, rows_json VARCHAR, import_report VARCHAR)"
    )
    con.execute(f"ALTER TABLE {LEDGER} ADD COLUMN IF NOT EXISTS import_report VARCHAR")
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
        f"INSERT INTO {LEDGER} (batch_id, seq, first_ingested_at, rows_json, import_report) "
        "VALUES (?, ?, ?, ?, ?)",
        [result.batch_id, prev[0], prev[1], json.dumps(result.rows, sort_keys=True), import_report],
    )


def _manifest_errors(batch_dir: Path, result: IngestResult) -> list[dict]:
    """The batch against its ``_READY`` manifest: BatchNotReady while files are missing or
    growing (left in place for a later attempt); changed or added files are errors."""
    if not (batch_dir / READY_MARKER).is_file():
        raise BatchNotReady(f"Landing batch {batch_dir.name!r} has no {READY_MARKER} marker yet.")
    try:
        manifest = read_manifest(batch_dir)
    except (OSError, ValueError) as exc:
        raise BatchNotReady(
            f"Landing batch {batch_dir.name!r}: {READY_MARKER} unreadable ({exc})."
        ) from None
    if manifest is None:
        result.notes.append(f"{READY_MARKER} holds no manifest: completeness not checked")
        return []
    gaps = manifest_gaps(batch_dir, manifest, checksums=False)
    if gaps:
        raise BatchNotReady(
            f"Landing batch {batch_dir.name!r} is not complete: {'; '.join(gaps[:5])}. It is left "
            "in place and ingested once every file of its manifest is there."
        )
    errors = [
        {
            "file": g.split(":")[0],
            "column": None,
            "check": "manifest_checksum",
            "failing_rows": 0,
            "examples": [{"reason": g}],
        }
        for g in manifest_gaps(batch_dir, manifest, checksums=True)
    ]
    errors += [
        {
            "file": name,
            "column": None,
            "check": "manifest_lists_file",
            "failing_rows": 0,
            "examples": [
                {"reason": "not in the batch's manifest: added after the batch was written"}
            ],
        }
        for name in unlisted_files(batch_dir, manifest)
    ]
    return errors


def _import_report(batch_dir: Path) -> str | None:
    path = batch_dir / IMPORT_REPORT
    if not path.is_file() or path.stat().st_size > _MAX_REPORT_BYTES:
        return None
    return path.read_text(encoding="utf-8", errors="replace")


def ingest_batch(
    con: duckdb.DuckDBPyConnection,
    batch_dir: Path,
    spec: CohortSpec,
    batch_id: str | None = None,
) -> IngestResult:
    """Validate every file of ``batch_dir``, then load it into ``raw`` atomically.

    Raises :class:`~fusion_assets.landing_zone.BatchNotReady` (nothing moved) while the
    files its manifest lists are not all there, and :class:`BatchValidationError` after
    moving the batch to ``<landing>/_quarantine/<batch_id>/`` (with ``errors.json``) when
    any file fails, including a column whose type differs from the raw table's; nothing
    is written to the warehouse in either case.  Re-loading a batch replaces its rows,
    so loading it twice changes nothing.
    """
    start = time.perf_counter()
    batch_dir = Path(batch_dir)
    batch_id = check_batch_id(batch_id or batch_dir.name)
    result = IngestResult(batch_id=batch_id)
    manifest_errors = _manifest_errors(batch_dir, result)
    plan = validate_batch(batch_dir, spec)
    plan.errors = manifest_errors + plan.errors + type_drift_errors(con, plan)
    if plan.errors:
        where = quarantine_batch(batch_dir, batch_id, plan.errors)
        raise BatchValidationError(batch_id, plan.errors, where)
    result.ignored_files = plan.ignored_files
    _load(con, plan.files, result, _import_report(batch_dir))
    drop_replaced(batch_dir.parent, batch_id)  # the new copy is in: the old one can go
    result.seconds = round(time.perf_counter() - start, 3)
    return result


def _load(
    con: duckdb.DuckDBPyConnection, files: list[FileCheck], result: IngestResult, report: str | None
) -> None:
    """Every file into ``raw`` in one transaction (patients first: modality rows are
    filtered against raw.patients)."""
    ordered = sorted(files, key=lambda c: (c.schema.table != "patients", c.path.name))
    con.begin()
    try:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW}")
        for table in _raw_tables(con):
            con.execute(f"DELETE FROM {RAW}.{qident(table)} WHERE batch_id = ?", [result.batch_id])
        for check in ordered:
            table = check.schema.table
            inserted = _insert_file(con, check, result.batch_id, known_only=table != "patients")
            result.rows[table] = inserted
            result.files_read.append(check.path.name)
            if check.n_rows > inserted:
                result.orphan_rows[table] = check.n_rows - inserted
        _record_batch(con, result, report)
        con.commit()
    except BaseException:
        con.rollback()
        raise
