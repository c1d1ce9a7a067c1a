"""The DuckDB type of every landing column ingest keeps, and type drift against the raw tables.

A later batch must bring each column with the type ``raw.<table>`` already has:
a lab column of numbers receiving ``'<0.5'`` as text, or a categorical column
receiving numbers, would otherwise fail the insert with a raw conversion error
(or silently turn ``1`` into a new category ``'1.0'``).  :func:`type_drift_errors`
reports such columns at validation, with the values, so the batch is quarantined
with a clear report instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa_arrow

from fusion_assets.kinds.sql import is_numeric_type
from fusion_assets.warehouse import schemas
from fusion_assets.warehouse.sql import qident, table_columns

if TYPE_CHECKING:
    from fusion_assets.warehouse.validate import BatchPlan, FileCheck

RAW = "raw"
# Fixed column types of the non-modality tables (data-contracts §1).
PATIENTS_TYPES = {
    "patient_id": "VARCHAR",
    "index_time": "TIMESTAMP",
    "label": "INTEGER",
    "sex": "VARCHAR",
    "age": "INTEGER",
    "site": "VARCHAR",
}
ORACLE_TYPES = {"patient_id": "VARCHAR", "oracle_prob": "DOUBLE"}
# An all-null payload column (arrow type "null") takes the type the raw table
# already has for it, else DOUBLE.
UNTYPED = "NULL"
_EXAMPLES = 5


def column_types(check: FileCheck) -> dict[str, str]:
    """DuckDB type of every column ingest keeps from one file."""
    fs = check.schema
    assert fs is not None and check.arrow_schema is not None
    if fs.table == "patients":
        return dict(PATIENTS_TYPES)
    if fs.table == "oracle":
        return dict(ORACLE_TYPES)
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
            types[name] = UNTYPED  # resolved against the existing table at insert
        elif pa_arrow.types.is_string(typ) or pa_arrow.types.is_large_string(typ):
            types[name] = "VARCHAR"
        else:
            types[name] = "DOUBLE"
    for rule in fs.lists:
        types[rule.column] = "FLOAT[]"
    return types


def _examples(check: FileCheck, column: str, numeric: bool) -> tuple[int, list[dict]]:
    """Rows (1-based) and values of ``column`` that do not fit the raw table's type."""
    col = qident(column)
    bad = f"TRY_CAST({col} AS DOUBLE) IS NULL" if numeric else "TRUE"
    with duckdb.connect() as con:
        n, rows, values = con.execute(
            f"""SELECT count(*), list(r ORDER BY r)[1:{_EXAMPLES}], list(v ORDER BY r)[1:{_EXAMPLES}]
                FROM (SELECT file_row_number + 1 AS r, CAST({col} AS VARCHAR) AS v
                      FROM read_parquet(?, file_row_number = true) WHERE {col} IS NOT NULL AND {bad})""",
            [str(check.path)],
        ).fetchone()
    return int(n), [
        {"row": int(r), "value": v} for r, v in zip(rows or [], values or [], strict=False)
    ]


def _list_lengths(con: duckdb.DuckDBPyConnection, check: FileCheck, column: str) -> dict | None:
    """A list column whose lengths differ from the raw table's (when the spec fixes none)."""
    table = f"{RAW}.{qident(check.schema.table)}"
    raw = con.execute(
        f"SELECT min(len({qident(column)})), max(len({qident(column)})) FROM {table}"
    ).fetchone()
    if raw[0] is None:
        return None
    with duckdb.connect() as reader:
        new = reader.execute(
            f"SELECT min(len({qident(column)})), max(len({qident(column)})) FROM read_parquet(?)",
            [str(check.path)],
        ).fetchone()
    if new[0] is None or (new[0], new[1]) == (raw[0], raw[1]) or raw[0] != raw[1]:
        return None
    return _error(
        check,
        column,
        f"list_length_matches_raw == {raw[0]}",
        check.n_rows,
        [{"lengths": list(new)}],
    )


def _error(check: FileCheck, column: str, name: str, failing: int, examples: list) -> dict:
    return {
        "file": check.path.name,
        "column": column,
        "check": name,
        "failing_rows": int(failing),
        "examples": examples[:_EXAMPLES],
    }


def type_drift_errors(con: duckdb.DuckDBPyConnection, plan: BatchPlan) -> list[dict]:
    """Columns of the batch whose type differs from what ``raw.<table>`` already holds."""
    errors = []
    for check in plan.files:
        if check.schema is None or check.arrow_schema is None:
            continue
        existing = table_columns(con, RAW, check.schema.table)
        for name, typ in column_types(check).items():
            before = existing.get(name)
            if before is None or typ == UNTYPED or name not in check.arrow_schema.names:
                continue
            if typ == "FLOAT[]" == before:
                found = _list_lengths(con, check, name)
                errors += [found] if found else []
                continue
            if typ == before:
                continue
            numeric_before = is_numeric_type(before)
            if numeric_before == is_numeric_type(typ):
                continue  # INTEGER into DOUBLE and the like: a widening the insert does
            n, examples = _examples(check, name, numeric=numeric_before)
            errors.append(
                _error(check, name, f"type_matches_raw ({before})", n or check.n_rows, examples)
            )
    return errors
