"""Run a spec's ``{query: ...}`` source in a sandbox: one read-only SELECT, files of the spec's folder only.

A query is parsed, never pasted into a larger statement: it must be exactly one
``SELECT`` (no ``ATTACH``, ``COPY``, ``INSTALL``, ``LOAD``, ``SET``, no second
statement).  It then runs on its own in-memory DuckDB connection whose file
access is limited to the spec's folder (DuckDB resolves ``..`` and symbolic
links before it checks), with extension loading and Python replacement scans
off and the configuration locked, so the query cannot widen its own rights.
Relative paths in the query (``FROM 'calls.parquet'``, ``read_csv('labs/*.csv')``)
are made absolute against the spec's folder first, because DuckDB checks a
relative path against the process's working folder.  The result streams into
the importer's connection as a temporary table.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import duckdb

from fusion_assets.cohorts.problems import ImportProblem, qid, short_error, strlit

_FIX = "fix the SQL in `source.query`"
_PATH_HINTS = (".", "/", "*")


def _statement(sql: str, where: str) -> str:
    """The text of exactly one SELECT statement, or an ImportProblem naming what was found."""
    with duckdb.connect() as parser:
        try:
            statements = parser.extract_statements(sql)
        except duckdb.Error as exc:
            raise ImportProblem(
                where, f"the source query is not valid SQL: {short_error(exc)}", _FIX
            ) from None
    kinds = [str(s.type).removeprefix("StatementType.") for s in statements]
    if kinds != ["SELECT"]:
        raise ImportProblem(
            where,
            f"a source query must be exactly one SELECT statement; found {kinds or 'nothing'}",
            "write one SELECT (no ATTACH, COPY, INSTALL, LOAD, SET or second statement)",
        )
    return statements[0].query


def _path_literals(node: Any, out: list[tuple[int, str]], in_function: bool = False) -> None:
    """(query location, value) of the file names a parsed SELECT reads."""
    if isinstance(node, list):
        for item in node:
            _path_literals(item, out, in_function)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if kind == "BASE_TABLE" and not node.get("schema_name") and not node.get("catalog_name"):
        name = str(node.get("table_name", ""))
        if any(h in name for h in _PATH_HINTS):
            out.append((int(node["query_location"]), name))
    elif kind == "TABLE_FUNCTION":
        for child in node["function"].get("children", []):
            if child.get("class") != "COMPARISON":  # named parameters (delim=';') are no paths
                _path_literals(child, out, in_function=True)
        return
    elif in_function and kind == "VALUE_CONSTANT":
        value = node.get("value", {})
        if value.get("type", {}).get("id") == "VARCHAR" and not value.get("is_null"):
            out.append((int(node["query_location"]), str(value["value"])))
    for value in node.values():
        if isinstance(value, dict | list):
            _path_literals(value, out, in_function)


def _quoted_token(sql: str, start: int) -> int | None:
    """End (exclusive) of the '...' or "..." token at ``start``; None if there is none."""
    if start >= len(sql) or sql[start] not in "'\"":
        return None
    quote, i = sql[start], start + 1
    while i < len(sql):
        if sql[i] == quote:
            if i + 1 < len(sql) and sql[i + 1] == quote:
                i += 2  # an escaped quote
                continue
            return i + 1
        i += 1
    return None


def absolute_paths(sql: str, base_dir: Path) -> str:
    """``sql`` with every relative file name it reads made absolute against ``base_dir``."""
    with duckdb.connect() as parser:
        tree = json.loads(parser.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0])
    found: list[tuple[int, str]] = []
    _path_literals(tree.get("statements", []), found)
    out = sql
    for location, value in sorted(set(found), reverse=True):
        end = _quoted_token(out, location)
        if end is None or "://" in value or Path(value).is_absolute():
            continue
        quote = out[location]
        full = str(base_dir / value).replace(quote, quote * 2)
        out = out[:location] + quote + full + quote + out[end:]
    return out


def _sandbox(base_dir: Path, temp_dir: str) -> duckdb.DuckDBPyConnection:
    """An in-memory connection that may read only under ``base_dir``, its settings locked."""
    con = duckdb.connect(":memory:")
    allowed = str(base_dir.resolve()).rstrip("/") + "/"
    for setting, value in (
        ("allowed_directories", f"[{strlit(allowed)}]"),
        ("temp_directory", strlit(temp_dir)),
        ("TimeZone", "'UTC'"),
        ("autoinstall_known_extensions", "false"),
        ("autoload_known_extensions", "false"),
        ("python_enable_replacements", "false"),
        ("enable_external_access", "false"),
        ("lock_configuration", "true"),  # last: nothing the query runs can undo the above
    ):
        con.execute(f"SET {setting} = {value}")
    return con


def _failure(where: str, exc: duckdb.Error, base_dir: Path) -> ImportProblem:
    if isinstance(exc, duckdb.PermissionException):
        return ImportProblem(
            where,
            f"the source query may read files of the spec's folder ({base_dir}) only: "
            f"{short_error(exc)}",
            "copy the file into the spec's folder (or a subfolder) and name it relative to it",
        )
    return ImportProblem(where, f"the source query failed: {short_error(exc)}", _FIX)


def read_query(
    con: duckdb.DuckDBPyConnection, table: str, sql: str, base_dir: Path, where: str
) -> None:
    """Run ``sql`` in the sandbox and store its rows, in order, as temp table ``table`` of ``con``."""
    select = _statement(sql, where)
    try:
        safe_sql = absolute_paths(select, base_dir)
    except (duckdb.Error, KeyError, ValueError) as exc:
        raise ImportProblem(where, f"the source query could not be parsed: {exc}", _FIX) from None
    temp_dir = tempfile.mkdtemp(prefix="fusion-query-")
    sandbox = _sandbox(base_dir, temp_dir)
    try:
        # materialised in the sandbox first: a plain execute that Ctrl-C / SIGTERM interrupts
        # (a stream consumed by another connection would block on a query that never yields)
        sandbox.execute(f"CREATE TEMP TABLE query_result AS {safe_sql}")
        reader = sandbox.execute("SELECT * FROM query_result").to_arrow_reader()
        con.register("_query_result", reader)
        try:
            con.execute(f"CREATE TEMP TABLE {qid(table)} AS SELECT * FROM _query_result")
        finally:
            con.unregister("_query_result")
    except duckdb.Error as exc:
        raise _failure(where, exc, base_dir) from None
    finally:
        sandbox.close()
        shutil.rmtree(temp_dir, ignore_errors=True)
