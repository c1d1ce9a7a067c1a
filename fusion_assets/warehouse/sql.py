"""Small SQL helpers shared by the warehouse modules."""

from __future__ import annotations

import duckdb


def qident(name: str) -> str:
    """Quote an identifier (modality and feature names come from user specs)."""
    return '"' + name.replace('"', '""') + '"'


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_catalog = current_database() AND table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchall()[0]
    return bool(row and row[0])


def table_columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> dict[str, str]:
    """Column name -> DuckDB type, in table order."""
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_catalog = current_database() AND table_schema = ? AND table_name = ? "
        "ORDER BY ordinal_position",
        [schema, table],
    ).fetchall()
    return {name: typ for name, typ in rows}


def connect(path: str, threads: int = 2, memory_limit: str = "3GB") -> duckdb.DuckDBPyConnection:
    """Open the warehouse with laptop-friendly limits.

    Two threads and a 3 GB cap keep a 100k-patient run under the 4 GiB RSS
    budget on a two-core machine; DuckDB spills to disk beyond the cap.
    """
    con = duckdb.connect(path)
    con.execute(f"SET threads = {int(threads)}")
    con.execute(f"SET memory_limit = '{memory_limit}'")
    # Large inserts need not keep rows in insertion order; this lets DuckDB stream.
    con.execute("SET preserve_insertion_order = false")
    return con
