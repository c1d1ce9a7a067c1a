"""Validate every file of a landing batch before anything is written.

All errors of all files are collected (pandera lazy validation plus the list
checks), each as ``{file, column, check, failing_rows, examples}`` with at most
five examples, so one report tells the data owner everything to fix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.parquet as pq

from fusion_assets.cohorts.spec import CohortSpec
from fusion_assets.identifiers import reserved
from fusion_assets.warehouse import schemas

MAX_EXAMPLES = 5

PATIENTS_FILE = "patients.parquet"
ORACLE_FILE = "oracle.parquet"


@dataclass
class FileCheck:
    """One landing file to validate and, if valid, load."""

    path: Path
    schema: schemas.FileSchema | None = None  # None until the file schema could be read
    arrow_schema: pa_arrow.Schema | None = None
    n_rows: int = 0


@dataclass
class BatchPlan:
    """The files of a batch, what they map to, and every validation error."""

    files: list[FileCheck] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    ignored_files: list[str] = field(default_factory=list)


def _jsonable(value: Any) -> Any:
    """A failure value as something json.dumps accepts (inf and NaN as text)."""
    if value is None:
        return None
    if isinstance(value, float) and (math.isinf(value) or math.isnan(value)):
        return str(value)
    if isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    return str(value)


def _error(file: str, column: str | None, check: str, failing: int, examples: list) -> dict:
    return {
        "file": file,
        "column": column,
        "check": check,
        "failing_rows": int(failing),
        "examples": examples[:MAX_EXAMPLES],
    }


def _pandera_errors(file: str, frame: pd.DataFrame, schema: pa.DataFrameSchema) -> list[dict]:
    """Run the pandera schema lazily and group failure cases per column and check."""
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    else:
        return []
    # A missing column is reported under the schema name; report the column itself.
    missing = cases["check"] == "column_in_dataframe"
    cases.loc[missing, "column"] = cases.loc[missing, "failure_case"]
    out = []
    for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=False):
        column = None if pd.isna(column) else str(column)
        whole_column = check.startswith("dtype_is_") or group["index"].isna().all()
        if whole_column:
            dtype = str(frame[column].dtype) if column in frame.columns else None
            failing = len(frame) if column in frame.columns else 0
            examples = [{"dtype": dtype}] if dtype else []
            if check == "column_in_dataframe":
                failing = len(frame)
                examples = [{"present_columns": [str(c) for c in frame.columns][:20]}]
        else:
            failing = int(group["index"].nunique())
            # data rows of the file, counted from 1 (as the importer counts them)
            examples = [
                {"row": int(r.index) + 1, "value": _jsonable(r.failure_case)}
                for r in group.head(MAX_EXAMPLES).itertuples()
            ]
        out.append(_error(file, column, str(check), failing, examples))
    return out


_LIST_TYPES = (
    pa_arrow.types.is_list,
    pa_arrow.types.is_large_list,
    pa_arrow.types.is_fixed_size_list,
)


def _list_errors(
    path: Path, rule: schemas.ListColumnRule, arrow_schema: pa_arrow.Schema
) -> list[dict]:
    """Type, null, length and finiteness of a list column, vectorised in DuckDB.

    DuckDB streams the parquet file, so a 100k x 2,000 omics matrix is checked
    without materialising Python lists.
    """
    file, col = path.name, rule.column
    if col not in arrow_schema.names:
        return [
            _error(
                file, col, "column_in_dataframe", 0, [{"present_columns": arrow_schema.names[:20]}]
            )
        ]
    typ = arrow_schema.field(col).type
    if not (
        any(t(typ) for t in _LIST_TYPES)
        and (
            pa_arrow.types.is_floating(typ.value_type) or pa_arrow.types.is_integer(typ.value_type)
        )
    ):
        return [
            _error(
                file,
                col,
                "dtype_is_list_of_numbers",
                pq.ParquetFile(path).metadata.num_rows,
                [{"dtype": str(typ)}],
            )
        ]
    qcol = f'"{col}"'
    # no declared length: every list must have the file's most common length
    length = (
        str(rule.length) if rule.length else f"(SELECT mode(len({qcol})) FROM read_parquet($1))"
    )
    length_bad = f"len({qcol}) <> {length}"
    length_check = f"list_length == {rule.length}" if rule.length else "list_length_uniform"
    # list_max is NaN when any element is NaN (NaN sorts last) and inf when any is inf.
    nonfinite = f"NOT (list_max({qcol}) < 'inf'::DOUBLE AND list_min({qcol}) > '-inf'::DOUBLE)"
    sql = f"""
        WITH flagged AS (
            SELECT file_row_number + 1 AS row_number,
                   len({qcol}) AS length,
                   {qcol} IS NULL AS is_null,
                   {qcol} IS NOT NULL AND ({length_bad}) AS bad_length,
                   {qcol} IS NOT NULL AND len({qcol}) > 0 AND (
                       list_count({qcol}) < len({qcol}) OR {nonfinite}) AS non_finite
            FROM read_parquet($1, file_row_number = true)
        )
        SELECT check_name, count(*) AS failing,
               list(row_number ORDER BY row_number)[1:{MAX_EXAMPLES}] AS rows,
               list(length ORDER BY row_number)[1:{MAX_EXAMPLES}] AS lengths
        FROM (
            SELECT 'not_nullable' AS check_name, row_number, length FROM flagged WHERE is_null
            UNION ALL
            SELECT '{length_check}', row_number, length FROM flagged WHERE bad_length
            UNION ALL
            SELECT 'elements_finite', row_number, length FROM flagged WHERE non_finite
        )
        GROUP BY check_name
    """
    with duckdb.connect() as con:
        rows = con.execute(sql, [str(path)]).fetchall()
    out = []
    for check, failing, rnums, lengths in rows:
        examples = [
            {"row": int(r), "length": (int(n) if n is not None else None)}
            for r, n in zip(rnums, lengths, strict=False)
        ]
        out.append(_error(file, col, check, failing, examples))
    return out


def _read_schema(check: FileCheck, errors: list[dict]) -> bool:
    """Read the parquet footer; an unreadable file is one error naming it."""
    try:
        meta = pq.ParquetFile(check.path)
        check.arrow_schema = meta.schema_arrow
        check.n_rows = meta.metadata.num_rows
        return True
    except Exception as exc:  # noqa: BLE001 - any reader failure means "unreadable"
        errors.append(
            _error(
                check.path.name,
                None,
                "readable_parquet",
                0,
                [{"reason": f"{type(exc).__name__}: {exc}"[:300]}],
            )
        )
        return False


def _validate_file(check: FileCheck, errors: list[dict]) -> None:
    schema = check.schema
    assert schema is not None and check.arrow_schema is not None
    present = [c for c in schema.scalar_columns if c in check.arrow_schema.names]
    try:
        frame = pq.read_table(check.path, columns=present).to_pandas()
    except Exception as exc:  # noqa: BLE001 - a corrupt column chunk is an unreadable file
        errors.append(
            _error(
                check.path.name,
                None,
                "readable_parquet",
                check.n_rows,
                [{"reason": f"{type(exc).__name__}: {exc}"[:300]}],
            )
        )
        return
    errors.extend(_pandera_errors(check.path.name, frame, schema.frame))
    for rule in schema.lists:
        try:
            errors.extend(_list_errors(check.path, rule, check.arrow_schema))
        except duckdb.Error as exc:
            errors.append(
                _error(
                    check.path.name,
                    rule.column,
                    "readable_parquet",
                    check.n_rows,
                    [{"reason": str(exc)[:300]}],
                )
            )


def _reserved_columns(check: FileCheck, errors: list[dict]) -> None:
    """Payload columns of a modality file that take a name the pipeline uses itself."""
    assert check.schema is not None and check.arrow_schema is not None
    keys = {schemas.PATIENT_KEY, schemas.EVENT_TIME}
    for name in check.arrow_schema.names:
        if name not in keys and reserved(name, "column"):
            errors.append(
                _error(
                    check.path.name, name, "name_not_reserved", check.n_rows, [{"reserved": name}]
                )
            )


def validate_batch(batch_dir: Path, spec: CohortSpec) -> BatchPlan:
    """Check every file of ``batch_dir`` against the spec; never writes anything."""
    plan = BatchPlan()
    patients = batch_dir / PATIENTS_FILE
    if not patients.exists():
        plan.errors.append(
            _error(PATIENTS_FILE, None, "file_exists", 0, [{"batch_dir": batch_dir.name}])
        )
    expected = {PATIENTS_FILE: None, ORACLE_FILE: None} | {
        f"{m}.parquet": m for m in spec.modality_names
    }
    for path in sorted(batch_dir.glob("*.parquet")):
        if path.name not in expected:
            plan.ignored_files.append(path.name)
            continue
        check = FileCheck(path)
        if not _read_schema(check, plan.errors):
            continue
        if path.name == PATIENTS_FILE:
            check.schema = schemas.patients_schema()
        elif path.name == ORACLE_FILE:
            check.schema = schemas.oracle_schema()
        else:
            check.schema = schemas.modality_schema(
                spec.modality(expected[path.name]), check.arrow_schema
            )
            _reserved_columns(check, plan.errors)
        _validate_file(check, plan.errors)
        plan.files.append(check)
    return plan
