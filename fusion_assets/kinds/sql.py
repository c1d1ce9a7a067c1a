"""DuckDB building blocks the kinds' alignment and profile SQL share.

Alignment runs ``WITH latest AS (...), used AS (...) <kind SQL>`` (see
``fusion_assets.warehouse.align.used_rows_sql``): ``used`` holds every raw
column of the rows alignment may use, plus ``raw_rowid`` and ``index_time``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import duckdb

from fusion_assets.kinds.base import listed_or_all
from fusion_assets.warehouse.sql import qident, table_columns

if TYPE_CHECKING:
    from fusion_assets.cohorts.spec import ModalitySpec

US_PER_DAY = 86_400 * 1_000_000
_NUMERIC = re.compile(
    r"^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT"
    r"|FLOAT|DOUBLE|REAL|DECIMAL.*)$"
)


def is_numeric_type(sql_type: str) -> bool:
    """Whether a DuckDB column type holds numbers."""
    return bool(_NUMERIC.match(sql_type))


_NESTED = re.compile(r"^(STRUCT|MAP|UNION|BLOB|BIT|JSON)\b|\]$")


def is_nested_type(sql_type: str) -> bool:
    """Whether a DuckDB column type is nested or binary (a struct, map, list, array, blob)."""
    return bool(_NESTED.search(sql_type))


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> Any:
    rows = con.execute(sql, params or []).fetchall()
    return rows[0][0] if rows else None


def raw_payload(
    con: duckdb.DuckDBPyConnection, modality: ModalitySpec, listed: list[str] | None
) -> dict[str, str]:
    """Payload columns of ``raw.<modality>`` -> DuckDB type (the listed ones, else all but keys)."""
    cols = table_columns(con, "raw", modality.name)
    return {n: cols[n] for n in listed_or_all(listed, list(cols)) if n in cols}


def days_since_last(modality: ModalitySpec) -> str:
    if not modality.timed:
        return "NULL::DOUBLE AS days_since_last"
    return (
        "(epoch_us(any_value(index_time)) - epoch_us(max(event_time)))"
        f" / {US_PER_DAY}.0 AS days_since_last"
    )


def latest_list_sql(modality: ModalitySpec, column: str, out: str, with_days: bool) -> str:
    """The latest used row per patient (any one if untimed), then its list payload.

    The row is chosen on small columns and the list fetched by ``rowid``
    afterwards, so DuckDB never carries 10^3-element lists through a GROUP BY.
    """
    pick = "arg_max(raw_rowid, event_time)" if modality.timed else "min(raw_rowid)"
    days = f"{days_since_last(modality)}," if with_days else ""
    return f""",
        picked AS (
            SELECT patient_id, {days} {pick} AS raw_rowid
            FROM used
            GROUP BY patient_id
        )
        SELECT k.patient_id,{" k.days_since_last," if with_days else ""}
               CAST(r.{qident(column)} AS FLOAT[]) AS {out}
        FROM picked k
        JOIN raw.{qident(modality.name)} r ON r.rowid = k.raw_rowid"""


def max_list_length(con: duckdb.DuckDBPyConnection, table: str | None, column: str) -> int:
    """The longest list in ``column`` of an aligned table (0 when there is none)."""
    if table is None:
        return 0
    return int(scalar(con, f"SELECT coalesce(max(len({column})), 0) FROM {table}"))


def with_days_since_last(columns: dict[str, str], summaries: dict[str, str]) -> dict[str, str]:
    """Drift summaries, led by ``days_since_last`` when the aligned table has it."""
    days = {"days_since_last": "days_since_last"} if "days_since_last" in columns else {}
    return {**days, **summaries}
