"""Dagster metadata for warehouse tables: row count, schema and a preview."""

from __future__ import annotations

import base64
from typing import Any

import dagster as dg
import duckdb

from fusion_assets.warehouse.sql import table_fingerprint, table_summary

PREVIEW_ROWS = 5
# List payloads (images, expression vectors) are far too wide to preview.
_LIST_PREVIEW_CHARS = 40


def table_metadata(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, Any]:
    """Row count, column schema and a small markdown preview of ``schema.table``."""
    n_rows, columns, preview = table_summary(con, table, PREVIEW_ROWS)
    schema = dg.TableSchema(columns=[dg.TableColumn(name=n, type=t) for n, t in columns[:200]])
    preview = preview.iloc[:, :12].map(_short)
    return {
        "table": dg.MetadataValue.text(table),
        "dagster/row_count": dg.MetadataValue.int(n_rows),
        "dagster/column_schema": schema,
        "n_columns": dg.MetadataValue.int(len(columns)),
        "preview": dg.MetadataValue.md(preview.to_markdown(index=False)),
    }


def table_version(
    con: duckdb.DuckDBPyConnection, table: str, where: str = "", params: list | None = None
) -> dg.DataVersion:
    """The table's content fingerprint as a Dagster data version: a re-materialization
    that changes nothing keeps its version, so downstream assets are not marked stale."""
    return dg.DataVersion(table_fingerprint(con, table, where, params))


def _short(value: Any) -> Any:
    text = str(value)
    return text if len(text) <= _LIST_PREVIEW_CHARS else text[:_LIST_PREVIEW_CHARS] + "…"


def png_markdown(png: bytes, alt: str) -> dg.MetadataValue:
    """A PNG shown inline in the Dagster UI's metadata panel."""
    encoded = base64.b64encode(png).decode("ascii")
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{encoded})")
