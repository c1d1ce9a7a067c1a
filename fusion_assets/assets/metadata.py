"""Dagster metadata for warehouse tables: row count, schema and a preview."""

from __future__ import annotations

import base64
from typing import Any

import dagster as dg
import duckdb

PREVIEW_ROWS = 5
# List payloads (images, expression vectors) are far too wide to preview.
_LIST_PREVIEW_CHARS = 40


def table_metadata(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, Any]:
    """Row count, column schema and a small markdown preview of ``schema.table``."""
    n_rows = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    columns = con.execute(f"DESCRIBE {table}").fetchall()
    schema = dg.TableSchema(
        columns=[dg.TableColumn(name=c[0], type=str(c[1])) for c in columns[:200]]
    )
    preview = con.execute(f"SELECT * FROM {table} LIMIT {PREVIEW_ROWS}").df()
    preview = preview.iloc[:, :12].map(_short)
    return {
        "table": dg.MetadataValue.text(table),
        "dagster/row_count": dg.MetadataValue.int(int(n_rows)),
        "dagster/column_schema": schema,
        "n_columns": dg.MetadataValue.int(len(columns)),
        "preview": dg.MetadataValue.md(preview.to_markdown(index=False)),
    }


def table_version(
    con: duckdb.DuckDBPyConnection, table: str, where: str = "", params: list | None = None
) -> dg.DataVersion:
    """A content fingerprint of a table (row count + XOR of row hashes), for Dagster lineage.

    Cheap (one scan, milliseconds for 10^5 rows) and order-independent, so a
    re-materialization that changes nothing keeps its data version and downstream
    assets are not marked stale.
    """
    n_rows, digest = con.execute(
        f"SELECT count(*), coalesce(bit_xor(hash(t)), 0) FROM {table} t {where}", params or []
    ).fetchone()
    return dg.DataVersion(f"{n_rows}-{digest:016x}")


def _short(value: Any) -> Any:
    text = str(value)
    return text if len(text) <= _LIST_PREVIEW_CHARS else text[:_LIST_PREVIEW_CHARS] + "…"


def png_markdown(png: bytes, alt: str) -> dg.MetadataValue:
    """A PNG shown inline in the Dagster UI's metadata panel."""
    encoded = base64.b64encode(png).decode("ascii")
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{encoded})")
