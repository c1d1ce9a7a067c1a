"""A CSV file's header as written, read without DuckDB.

DuckDB renames a repeated header (``x``, ``x`` becomes ``x``, ``x_1``), so the
importer reads the first line itself to find repeated names, and to know which
columns exist before the one DuckDB read (sniffing a 15,000-column file twice
took a minute).  Only the header and one data line are read.
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass
from pathlib import Path

from fusion_assets.kinds.limits import MAX_CSV_LINE_BYTES

_DELIMITERS = ",;\t|"


def _first_lines(path: Path, n: int = 2) -> list[str]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:  # type: ignore[operator]
        lines = [handle.readline(MAX_CSV_LINE_BYTES + 1) for _ in range(n)]
    return [line for line in lines if line]


@dataclass(frozen=True)
class Header:
    """A CSV header as written: its names, the delimiter and the line ending."""

    names: list[str]
    delimiter: str
    newline: str


def read_header(path: Path, delimiter: str | None) -> Header | None:
    """The header of ``path``; None when the file cannot be read as text here."""
    try:
        lines = _first_lines(path)
    except (OSError, UnicodeDecodeError, EOFError):
        return None  # DuckDB's read reports the file
    if not lines or len(lines[0]) > MAX_CSV_LINE_BYTES:
        return None
    if delimiter is None:
        try:
            dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
                "".join(lines), delimiters=_DELIMITERS
            )
        except csv.Error:
            dialect = csv.excel  # a single column, or nothing to tell
    else:
        dialect = csv.excel
    delimiter = delimiter or dialect.delimiter
    try:
        names = next(csv.reader([lines[0]], dialect, delimiter=delimiter))
    except (csv.Error, StopIteration, TypeError):
        return None
    newline = "\r\n" if lines[0].endswith("\r\n") else "\n"
    return Header([name.strip() for name in names], delimiter, newline)


def repeated_names(names: list[str]) -> list[str]:
    """Names a header carries more than once (ignoring case, as DuckDB does), in order."""
    first: dict[str, int] = {}
    repeated: list[str] = []
    for i, name in enumerate(names):
        j = first.setdefault(name.lower(), i)
        if j != i and names[j] not in repeated:
            repeated.append(names[j])
    return repeated
