"""Read a spec's sources (CSV/parquet files, globs, DuckDB queries) into DuckDB tables.

Each distinct source is read once into a temporary table of an in-memory DuckDB
connection, in file order, so ``rowid + 1`` is the data row a user sees in their
file (header excluded) and every check after this is a query.  Problems are
returned as :class:`ImportProblem` lines naming the table, file and fix; nothing
here writes anywhere.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from fusion_assets.cohorts.csv_header import Header, read_header, repeated_names
from fusion_assets.cohorts.problems import ImportProblem, qid, short_error, strlit
from fusion_assets.cohorts.sandbox import read_query
from fusion_assets.identifiers import reserved
from fusion_assets.kinds.limits import MAX_CSV_LINE_BYTES, MAX_SOURCE_BYTES, MAX_TEXT_BYTES

CSV_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
# Delimiters worth suggesting when a CSV comes back as a single column.
_DELIMITERS = (";", "\t", "|", ",")


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


def _inside(path: Path, base: Path) -> bool:
    """Whether ``path`` (symbolic links and ``..`` resolved) lies under ``base``."""
    try:
        path.resolve().relative_to(base.resolve())
    except ValueError:
        return False
    return True


def _files(where: str, source: dict[str, Any]) -> list[Path]:
    base = Path(source["base_dir"])
    full = base / source["path"]  # an absolute path stays absolute (and is then refused)
    matches = sorted(Path(p) for p in glob.glob(str(full), recursive=True))
    if not matches:
        raise ImportProblem(
            where,
            f"source file {source['path']!r} not found (looked for {full})",
            "fix `source` in the spec (paths are relative to the spec file's folder) or add the file",
        )
    outside = [str(p) for p in matches if not _inside(p, base)]
    if outside:
        raise ImportProblem(
            where,
            f"source {source['path']!r} reaches outside the spec's folder {base} "
            f"({outside[0]}, symbolic links and '..' resolved)",
            "keep the data in the spec file's folder or below it (move the spec beside the data)",
        )
    total = 0
    for path in matches:
        if path.is_dir():
            raise ImportProblem(
                where,
                f"source {path} is a folder",
                "point `source` at files, e.g. 'folder/*.parquet'",
            )
        size = path.stat().st_size
        if size == 0:
            raise ImportProblem(
                where,
                f"source file {path.name} is empty (0 bytes)",
                "re-export the file; an interrupted copy leaves empty files",
            )
        total += size
    if total > MAX_SOURCE_BYTES:
        raise ImportProblem(
            where,
            f"the source's files hold {total:,} bytes, over the limit of {MAX_SOURCE_BYTES:,}",
            "import the cohort in several batches (e.g. one per year), or select with a `query`",
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


# Sniffing the dialect of a CSV costs per column: a file this wide is read with the
# standard dialect (double quotes) and the delimiter of its header instead.
WIDE_CSV_COLUMNS = 1_000


def _reader_sql(
    fmt: str,
    files: list[Path],
    delimiter: str | None,
    text_columns: list[str],
    wide: Header | None = None,
) -> str:
    paths = "[" + ", ".join(strlit(p) for p in files) + "]"
    if fmt == "parquet":
        return f"read_parquet({paths}, union_by_name = true)"
    options = ["header = true", "union_by_name = true", f"max_line_size = {MAX_CSV_LINE_BYTES}"]
    if wide is not None:
        delimiter = delimiter or wide.delimiter
        newline = strlit(wide.newline).replace("\r", "\\r").replace("\n", "\\n")
        options += ["quote = '\"'", "escape = '\"'", f"new_line = {newline}"]
    if delimiter is not None:
        options.append(f"delim = {strlit(delimiter)}")
    if text_columns:
        # Ids like "007" must stay text, and labels and times are parsed by the importer.
        types = ", ".join(f"{strlit(c)}: 'VARCHAR'" for c in text_columns)
        options.append(f"types = {{{types}}}")
    return f"read_csv({paths}, {', '.join(options)})"


def _csv_headers(where: str, files: list[Path], delimiter: str | None) -> list[Header] | None:
    """Every file's header as written; ImportProblem when one repeats a name."""
    headers = []
    for path in files:
        header = read_header(path, delimiter)
        if header is None:
            return None  # DuckDB's read says what is wrong with the file
        repeated = repeated_names(header.names)
        if repeated:
            raise ImportProblem(
                where,
                f"the header of {path.name} names {repeated[:5]} more than once (ignoring case); "
                "the reader would keep the first and rename the others",
                "give every column its own name in the file",
            )
        headers.append(header)
    return headers


def _read_files(
    con: duckdb.DuckDBPyConnection, where: str, source: dict[str, Any], table: str, text: list[str]
) -> tuple[str, bool]:
    """Read a path or glob into ``table``; returns (display name, is_csv)."""
    files = _files(where, source)
    fmt = _format(where, files)
    display = files[0].name if len(files) == 1 else f"{source['path']} ({len(files)} files)"
    delimiter = source.get("delimiter")
    present: list[str] = []
    wide = None
    if fmt == "csv":
        headers = _csv_headers(where, files, delimiter)
        if headers is not None:
            present = [c for c in dict.fromkeys(text) if all(c in h.names for h in headers)]
            widest = max(headers, key=lambda h: len(h.names))
            wide = widest if len(widest.names) >= WIDE_CSV_COLUMNS else None
    reader = _reader_sql(fmt, files, delimiter, present, wide)
    try:
        con.execute(f"CREATE TEMP TABLE {qid(table)} AS SELECT * FROM {reader}")
    except duckdb.Error as exc:
        if present and "types" in str(exc).lower():  # DuckDB saw other columns: read plainly
            con.execute(
                f"CREATE TEMP TABLE {qid(table)} AS SELECT * FROM "
                + _reader_sql(fmt, files, delimiter, [])
            )
        else:
            raise _unreadable(where, display, exc) from None
    return display, fmt == "csv"


def read_source(
    con: duckdb.DuckDBPyConnection,
    where: str,
    source: dict[str, Any],
    table: str,
    text_columns: list[str],
) -> SourceTable:
    """Read ``source`` into the temporary table ``table``; ImportProblem when it cannot.

    ``text_columns`` (ids, the label, times) are read as text from CSVs when present.
    A ``query`` runs in the sandbox of :mod:`fusion_assets.cohorts.sandbox`.
    """
    if source.get("query"):
        read_query(con, table, source["query"], Path(source["base_dir"]), where)
        display, is_csv = "query", False
    else:
        display, is_csv = _read_files(con, where, source, table, text_columns)
    columns = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {qid(table)}").fetchall()}
    taken = [c for c in columns if reserved(c, "column") and c.lower() == "rowid"]
    if taken:
        raise ImportProblem(
            where,
            f"{display} has a column named {taken[0]!r}, which DuckDB reserves for row numbers",
            f"rename it in the file, or read the source with a `query` "
            f"(SELECT * RENAME ({taken[0]} AS row_id) FROM '...')",
        )
    n_rows = con.execute(f"SELECT count(*) FROM {qid(table)}").fetchone()[0]
    if n_rows == 0:
        raise ImportProblem(
            where,
            f"{display} has no data rows",
            "export the data again; the file holds a header only",
        )
    return SourceTable(table, display, columns, int(n_rows), is_csv, source.get("delimiter"))


_LINE_SIZE = re.compile(r"Maximum line size of (\d+) bytes exceeded\. Actual Size:\s*(\d+)")
_CSV_LINE = re.compile(r"CSV Error on Line: (\d+)")


def _unreadable(where: str, display: str, exc: BaseException) -> ImportProblem:
    message = short_error(exc)
    too_long = _LINE_SIZE.search(str(exc))
    if too_long:
        line = _CSV_LINE.search(str(exc))
        return ImportProblem(
            where,
            f"a line of {display}{f' (line {line.group(1)})' if line else ''} is "
            f"{int(too_long.group(2)):,} bytes, over the CSV line limit of "
            f"{int(too_long.group(1)):,} bytes",
            f"shorten or split that field (text values may hold up to {MAX_TEXT_BYTES:,} bytes), "
            "or store long texts in a parquet file",
        )
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
