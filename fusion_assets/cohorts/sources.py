"""Read a spec's sources (CSV/parquet files, globs, DuckDB queries) into DuckDB tables.

Each distinct source is read once into a temporary table of an in-memory DuckDB
connection, in file order, so ``rowid + 1`` is the data row a user sees in their
file (header excluded) and every check after this is a query.  Problems are
returned as :class:`ImportProblem` lines naming the table, file and fix; nothing
here writes anywhere.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

CSV_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
# Delimiters worth suggesting when a CSV comes back as a single column.
_DELIMITERS = (";", "\t", "|", ",")


class ImportProblem(Exception):
    """One problem with one table of a cohort; the importer collects them."""

    def __init__(self, where: str, problem: str, fix: str):
        self.where, self.problem, self.fix = where, problem, fix
        super().__init__(f"{where}: {problem} -> {fix}")


def qid(name: str) -> str:
    """A DuckDB identifier, quoted."""
    return '"' + str(name).replace('"', '""') + '"'


def short_error(exc: BaseException) -> str:
    """DuckDB's message without its multi-line dump of reader options."""
    text = str(exc).split("Possible Solution")[0].split("\n\n")[0]
    return " ".join(text.split())[:400]


@dataclass
class SourceTable:
    """A source read into DuckDB: its table, columns (name -> type) and display name."""

    table: str
    display: str  # e.g. "labs.csv" or "query"
    columns: dict[str, str] = field(default_factory=dict)
    n_rows: int = 0
    is_csv: bool = False
    delimiter: str | None = None

    def missing(self, where: str, key: str, column: str | None) -> ImportProblem | None:
        """A problem if ``column`` is not in this source (with the closest names)."""
        if column is None or column in self.columns:
            return None
        import difflib

        close = difflib.get_close_matches(column, list(self.columns), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
        problem = f"column {column!r} (`{key}`) not found in {self.display}"
        if self.is_csv and len(self.columns) == 1:
            (only,) = self.columns
            seen = [d for d in _DELIMITERS if d in only]
            if seen:
                problem += f", which was read as one column {only[:60]!r}: it looks delimited by {seen[0]!r}"
                return ImportProblem(
                    where,
                    problem,
                    f"set `delimiter: {seen[0]!r}` for this table in the spec (or remove `delimiter` to let it be sniffed)",
                )
        return ImportProblem(
            where,
            problem,
            f"{hint}fix `{key}` in the spec; the source has {list(self.columns)[:15]}",
        )


def source_key(source: dict[str, Any]) -> tuple:
    """Identity of a source, so a file used by two tables is read once."""
    return (
        source.get("path"),
        source.get("query"),
        source.get("delimiter"),
        source.get("base_dir"),
    )


def _files(where: str, source: dict[str, Any]) -> list[Path]:
    base = Path(source["base_dir"])
    pattern = Path(source["path"])
    full = pattern if pattern.is_absolute() else base / pattern
    matches = sorted(Path(p) for p in glob.glob(str(full), recursive=True))
    if not matches:
        raise ImportProblem(
            where,
            f"source file {source['path']!r} not found (looked for {full})",
            "fix `source` in the spec (paths are relative to the spec file's folder) or add the file",
        )
    for path in matches:
        if path.is_dir():
            raise ImportProblem(
                where,
                f"source {path} is a folder",
                "point `source` at files, e.g. 'folder/*.parquet'",
            )
        if path.stat().st_size == 0:
            raise ImportProblem(
                where,
                f"source file {path.name} is empty (0 bytes)",
                "re-export the file; an interrupted copy leaves empty files",
            )
    return matches


def _format(where: str, files: list[Path]) -> str:
    names = [p.name.lower() for p in files]
    if all(n.endswith(CSV_SUFFIXES) for n in names):
        return "csv"
    if all(n.endswith(PARQUET_SUFFIXES) for n in names):
        return "parquet"
    raise ImportProblem(
        where,
        f"cannot tell the format of {[p.name for p in files][:5]}",
        f"use files ending in {CSV_SUFFIXES + PARQUET_SUFFIXES} (one format per source), or a `query`",
    )


def _reader_sql(fmt: str, files: list[Path], delimiter: str | None, text_columns: list[str]) -> str:
    paths = "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in files) + "]"
    if fmt == "parquet":
        return f"read_parquet({paths}, union_by_name = true)"
    options = ["header = true", "union_by_name = true"]
    if delimiter is not None:
        options.append("delim = '" + delimiter.replace("'", "''") + "'")
    if text_columns:
        # Ids like "007" must stay text; DuckDB would otherwise infer integers.
        types = ", ".join(f"'{c.replace(chr(39), chr(39) * 2)}': 'VARCHAR'" for c in text_columns)
        options.append(f"types = {{{types}}}")
    return f"read_csv({paths}, {', '.join(options)})"


def read_source(
    con: duckdb.DuckDBPyConnection,
    where: str,
    source: dict[str, Any],
    table: str,
    text_columns: list[str],
) -> SourceTable:
    """Read ``source`` into the temporary table ``table``; ImportProblem when it cannot.

    ``text_columns`` (id columns) are read as text from CSVs when present.
    """
    if source.get("query"):
        base = str(source["base_dir"]).replace("'", "''")
        con.execute(f"SET file_search_path = '{base}'")
        display, reader, is_csv = "query", f"({source['query']})", False
    else:
        files = _files(where, source)
        fmt = _format(where, files)
        display = files[0].name if len(files) == 1 else f"{source['path']} ({len(files)} files)"
        is_csv = fmt == "csv"
        delimiter = source.get("delimiter")
        try:
            header = con.execute(
                f"DESCRIBE SELECT * FROM {_reader_sql(fmt, files, delimiter, [])}"
            ).fetchall()
        except duckdb.Error as exc:
            raise _unreadable(where, display, exc) from None
        present = [c for c in text_columns if c in {row[0] for row in header}]
        reader = _reader_sql(fmt, files, delimiter, present if is_csv else [])
    try:
        con.execute(f"CREATE TEMP TABLE {qid(table)} AS SELECT * FROM {reader}")
    except duckdb.Error as exc:
        if source.get("query"):
            raise ImportProblem(
                where,
                f"the source query failed: {short_error(exc)}",
                "fix the SQL in `source.query`",
            ) from None
        raise _unreadable(where, display, exc) from None
    columns = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {qid(table)}").fetchall()}
    n_rows = con.execute(f"SELECT count(*) FROM {qid(table)}").fetchone()[0]
    if n_rows == 0:
        raise ImportProblem(
            where,
            f"{display} has no data rows",
            "export the data again; the file holds a header only",
        )
    return SourceTable(table, display, columns, int(n_rows), is_csv, source.get("delimiter"))


def _unreadable(where: str, display: str, exc: BaseException) -> ImportProblem:
    message = short_error(exc)
    if "unicode" in message.lower() or "utf-8" in message.lower():
        return ImportProblem(
            where,
            f"{display} is not valid UTF-8 text ({message})",
            "re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 in.csv > out.csv`)",
        )
    return ImportProblem(
        where,
        f"cannot read {display}: {message}",
        "re-export the file; it is truncated, corrupt or not in the format its name says",
    )
