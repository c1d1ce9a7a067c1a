"""Small SQL helpers shared by the warehouse modules."""

from __future__ import annotations

import duckdb
import pandas as pd


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


def table_summary(
    con: duckdb.DuckDBPyConnection, table: str, preview_rows: int = 5
) -> tuple[int, list[tuple[str, str]], pd.DataFrame]:
    """Row count, ``(column, type)`` pairs and the first rows of ``schema.table``."""
    n_rows = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    columns = [(c[0], str(c[1])) for c in con.execute(f"DESCRIBE {table}").fetchall()]
    preview = con.execute(f"SELECT * FROM {table} LIMIT {int(preview_rows)}").df()
    return int(n_rows), columns, preview


def table_fingerprint(
    con: duckdb.DuckDBPyConnection, table: str, where: str = "", params: list | None = None
) -> str:
    """A content fingerprint of a table: row count + XOR of row hashes.

    Cheap (one scan, milliseconds for 10^5 rows) and order-independent, so a
    rewrite that changes nothing keeps its fingerprint.
    """
    n_rows, digest = con.execute(
        f"SELECT count(*), coalesce(bit_xor(hash(t)), 0) FROM {table} t {where}", params or []
    ).fetchone()
    return f"{n_rows}-{digest:016x}"
