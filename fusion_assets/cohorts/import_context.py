"""The importer's checks for one modality's payload, as a kind calls them (``ImportContext``).

Every check over many columns is one query (one pass over the source), never a
query per column: a 15,000-column dense omics CSV is checked for empty
columns, infinities and missing cells in three scans.  Each problem names the
modality, file, columns, data rows (1-based) and the fix.
"""

from __future__ import annotations

import fnmatch
import re
import time
from typing import TYPE_CHECKING

from fusion_assets.cohorts.problems import qid
from fusion_assets.cohorts.sources import SourceTable
from fusion_assets.cohorts.spec import ModalitySpec
from fusion_assets.kinds.limits import MAX_TEXT_BYTES
from fusion_assets.kinds.options import REGEX_PREFIX
from fusion_assets.kinds.sql import is_nested_type, is_numeric_type

if TYPE_CHECKING:
    from fusion_assets.cohorts.importer import Importer

_FLOATS = ("FLOAT", "DOUBLE", "REAL")
# A text column is "numbers with a few stray values" when this share of its values parse.
NUMERIC_SHARE = 0.8
_SHOWN_COLUMNS = 10


def _inf_count(column: str) -> str:
    # sum(CAST(...)), not count(*) FILTER (...): DuckDB plans a filter per aggregate,
    # 40 s for 3,000 columns against 0.7 s
    return f"sum(CAST(isinf({qid(column)}) AS INTEGER))"


class PayloadContext:
    """One modality's source, as its kind's ``import_payload`` sees it."""

    def __init__(
        self,
        importer: Importer,
        where: str,
        m: ModalitySpec,
        src: SourceTable,
        keys: set,
        same_as_patients: bool,
    ) -> None:
        self.importer, self.where, self.m, self.src = importer, where, m, src
        self.keys, self.same_as_patients = keys, same_as_patients

    @property
    def n_rows(self) -> int:
        return self.src.n_rows

    @property
    def id_column(self) -> str:
        return str((self.m.source or {}).get("id_column"))

    @property
    def time_column(self) -> str | None:
        return (self.m.source or {}).get("time_column")

    def key(self, option: str) -> str:
        return f"modalities.{self.m.name}.{option}"

    def column_type(self, column: str) -> str:
        return self.src.columns[column]

    def problem(self, text: str, fix: str) -> None:
        self.importer.problem(self.where, text, fix)

    def log(self, text: str) -> None:
        self.importer.log(f"modality {self.m.name}: {text}")

    def need(self, option: str, column: str | None) -> bool:
        return self.importer.need(self.where, self.src, self.key(option), column)

    def bad_rows(self, condition: str, shown: str) -> tuple[int, list, list]:
        return self.importer.bad_rows(self.src, condition, shown)

    def duplicates(self, columns: list[str]) -> tuple[int, int, list[str]]:
        """Key combinations of ``columns`` on more than one row: (keys, rows, first examples)."""
        keys = ", ".join(qid(c) for c in columns)
        shown = ", ".join(f"CAST({qid(c)} AS VARCHAR)" for c in columns)
        n_keys, n_rows, examples = self.importer.con.execute(
            f"""SELECT count(*), coalesce(sum(n), 0), list(key ORDER BY first)[1:3] FROM (
                    SELECT concat_ws(' / ', {shown}) AS key, count(*) AS n, min(rowid) AS first
                    FROM {qid(self.src.table)} GROUP BY {keys} HAVING count(*) > 1)"""
        ).fetchone()
        return int(n_keys), int(n_rows), list(examples or [])

    def scalar_row(self, sql: str) -> tuple:
        """One row of ``SELECT <sql> FROM <the source>``."""
        return self.importer.con.execute(f"SELECT {sql} FROM {qid(self.src.table)}").fetchone()

    # ------------------------------------------------------------ choosing columns
    def features(
        self, selection: list[str] | str | None, option: str = "features"
    ) -> list[str] | None:
        """Resolve a selection (list, glob, regex or absent: all columns but the keys)."""
        reserved = set(self.keys)
        if self.same_as_patients:
            pdesc = self.importer.spec.patients_source or {}
            # The label (and index time) of a shared table must never become a feature: leakage.
            reserved |= {pdesc.get("label_column"), pdesc.get("index_time")}
        key = self.key(option)
        if isinstance(selection, list):
            for c in selection:
                if c in reserved - self.keys:
                    self.problem(
                        f"feature {c!r} is the patients' label or index time",
                        f"remove it from `{key}` (it would leak the label)",
                    )
            if not all([self.need(option, c) for c in selection]):
                return None
            return list(selection)
        candidates = [c for c in self.src.columns if c not in reserved]
        if selection is None:
            names = candidates
        elif selection.startswith(REGEX_PREFIX):
            pattern = re.compile(selection[len(REGEX_PREFIX) :])
            names = [c for c in candidates if pattern.search(c)]
        else:
            names = [c for c in candidates if fnmatch.fnmatchcase(c, selection)]
        if not names:
            self.problem(
                f"`{key}` ({selection!r}) matches no column of {self.src.display}",
                f"fix the pattern; the columns are {candidates[:15]}",
            )
            return None
        self.log(f"{len(names):,} column(s) selected by `{key}`")
        return names

    def numeric_only(self, names: list[str], what: str) -> bool:
        columns = self.src.columns
        bad = [f"{c} ({columns[c]})" for c in names if not is_numeric_type(columns[c])]
        if bad:
            self.problem(
                f"{what} must be numeric; not numeric: {bad[:_SHOWN_COLUMNS]}"
                + (f" and {len(bad) - _SHOWN_COLUMNS} more" if len(bad) > _SHOWN_COLUMNS else ""),
                "convert them to numbers or leave them out",
            )
        return not bad

    def flat_columns(self, names: list[str], what: str) -> bool:
        """Refuse nested columns (structs, maps, lists, blobs): they would become text."""
        nested = [
            f"{c} ({self.src.columns[c]})" for c in names if is_nested_type(self.src.columns[c])
        ]
        if nested:
            self.problem(
                f"{what} hold nested or binary values: {nested[:_SHOWN_COLUMNS]}",
                "flatten them with a `query` (e.g. SELECT s.field AS s_field ...) or leave them out",
            )
        return not nested

    # ------------------------------------------------------------ one pass over many columns
    def empty_columns(self, names: list[str], option: str) -> None:
        started = time.perf_counter()
        counts = self.scalar_row(", ".join(f"count({qid(c)})" for c in names))
        self._report_empty(names, list(counts), option)
        self._timed("empty columns", names, started)

    def infinite_values(self, names: list[str]) -> None:
        """Numeric columns holding +/-inf, by column, with the data rows (one scan for all)."""
        floats = [c for c in names if self.src.columns[c] in _FLOATS]
        if floats:  # only floating-point columns can hold infinities
            started = time.perf_counter()
            self._report_infinite(floats, list(self.scalar_row(", ".join(map(_inf_count, floats)))))
            self._timed("infinities", floats, started)

    def numeric_block(self, names: list[str], option: str, what: str) -> None:
        """Empty columns, infinities and rows with an empty cell of many columns, in ONE scan."""
        started = time.perf_counter()
        floats = [c for c in names if self.src.columns[c] in _FLOATS]
        any_null = " OR ".join(f"{qid(c)} IS NULL" for c in names)
        parts = [f"count({qid(c)})" for c in names] + [_inf_count(c) for c in floats]
        row = self.scalar_row(", ".join([*parts, f"sum(CAST(({any_null}) AS INTEGER))"]))
        self._report_empty(names, list(row[: len(names)]), option)
        self._report_infinite(floats, list(row[len(names) : len(parts)]))
        if row[-1]:
            n, rows, _ = self.bad_rows(any_null, "NULL")
            self.problem(
                f"{n} of {self.n_rows} rows have missing values among the {len(names):,} {what} "
                f"(data rows {rows})",
                "impute them before import (a vector is stored whole) or drop those rows",
            )
        self._timed("empty columns, infinities and missing cells", names, started)

    def _report_empty(self, names: list[str], counts: list[int], option: str) -> None:
        empty = [c for c, n in zip(names, counts, strict=True) if n == 0]
        if empty:
            self.problem(
                f"feature column(s) {empty[:_SHOWN_COLUMNS]} are entirely empty "
                f"({self.src.n_rows} rows, no value)"
                + (
                    f" and {len(empty) - _SHOWN_COLUMNS} more"
                    if len(empty) > _SHOWN_COLUMNS
                    else ""
                ),
                f"drop them from `{self.key(option)}` (or from the file), or fill them",
            )

    def _report_infinite(self, floats: list[str], counts: list[int | None]) -> None:
        flagged = [c for c, n in zip(floats, counts, strict=True) if n]
        for c in flagged[:_SHOWN_COLUMNS]:
            n, rows, values = self.bad_rows(f"isinf({qid(c)})", qid(c))
            self.problem(
                f"column {c!r}: {n} value(s) are infinite ({values[:2]}; data rows {rows})",
                "replace them by an empty cell (missing) or a real value",
            )
        if len(flagged) > _SHOWN_COLUMNS:
            self.problem(
                f"{len(flagged) - _SHOWN_COLUMNS} more columns hold infinite values",
                "replace them by empty cells (missing) or real values",
            )

    def numbers_as_text(self, names: list[str]) -> None:
        """Text columns that are numbers but for a few values ('<0.5', 'NA'): refused, named."""
        text = [c for c in names if self.src.columns[c] == "VARCHAR"]
        if not text:
            return
        parts = [f"count({qid(c)}), count(TRY_CAST({qid(c)} AS DOUBLE))" for c in text]
        counts = self.scalar_row(", ".join(parts))
        for i, c in enumerate(text):
            present, numeric = counts[2 * i], counts[2 * i + 1]
            if present and numeric < present and numeric >= NUMERIC_SHARE * present:
                cond = f"{qid(c)} IS NOT NULL AND TRY_CAST({qid(c)} AS DOUBLE) IS NULL"
                n, rows, _ = self.bad_rows(cond, qid(c))
                values = self.importer.distinct_values(self.src, qid(c), cond)
                self.problem(
                    f"column {c!r} holds numbers except {n} value(s) {values} (data rows {rows}); "
                    "it would be read as a category",
                    "write those values as numbers, or leave the cells empty for missing "
                    "(a category on purpose: prefix every value, e.g. with a `query`)",
                )

    def text_lengths(self, names: list[str]) -> None:
        """Text values over ``MAX_TEXT_BYTES`` (a note, a category), by column and row."""
        for c in [c for c in names if self.src.columns[c] == "VARCHAR"]:
            n, rows, sizes = self.bad_rows(
                f"strlen({qid(c)}) > {MAX_TEXT_BYTES}", f"strlen({qid(c)})"
            )
            if n:
                self.problem(
                    f"column {c!r}: {n} value(s) are longer than {MAX_TEXT_BYTES:,} bytes "
                    f"(sizes {sizes}, data rows {rows})",
                    "shorten or split those texts",
                )

    def _timed(self, what: str, names: list[str], started: float) -> None:
        if len(names) >= 1000:
            self.log(
                f"checked {len(names):,} columns for {what} in {time.perf_counter() - started:.1f} s"
            )

    # ------------------------------------------------------------ list payloads
    def list_payload(
        self,
        column: str,
        option: str,
        out: str,
        length: int | None,
        fix: str,
        max_length: int | None = None,
    ) -> dict[str, str] | None:
        """``out``: the list column ``column`` as FLOAT[], every list the same length."""
        if not self.need(option, column):
            return None
        typ = self.src.columns[column]
        element = re.sub(r"\[\d*\]$", "", typ)
        if element == typ or not is_numeric_type(element):
            self.problem(
                f"column {column!r} holds {typ}, not a list of numbers",
                "store one list of numbers per row (parquet list column)",
            )
            return None
        col = qid(column)
        if length:
            self._list_lengths(
                column,
                f"{col} IS NOT NULL AND len({col}) <> {length}",
                f"do not have {length} values",
                fix,
            )
        else:
            self._uniform_lengths(column, max_length)
        n, rows, _ = self.bad_rows(
            f"{col} IS NOT NULL AND (list_count({col}) < len({col}) OR "
            f"list_bool_or(list_transform({col}, x -> isnan(x::DOUBLE) OR isinf(x::DOUBLE))))",
            "NULL",
        )
        if n:
            self.problem(
                f"column {column!r}: {n} of {self.src.n_rows} lists hold empty, NaN or infinite "
                f"values (data rows {rows})",
                "impute or drop those values before import (a vector is stored whole)",
            )
        return {out: f"CAST({col} AS FLOAT[])"}

    def _list_lengths(self, column: str, condition: str, what: str, fix: str) -> None:
        n, rows, lengths = self.bad_rows(condition, f"len({qid(column)})")
        if n:
            self.problem(
                f"column {column!r}: {n} of {self.src.n_rows} lists {what} "
                f"(lengths {lengths}, data rows {rows})",
                fix,
            )

    def _uniform_lengths(self, column: str, max_length: int | None) -> None:
        """Without a declared length, every list must have the most common one."""
        col = qid(column)
        common, longest = self.scalar_row(f"mode(len({col})), max(len({col}))")
        if common is None:
            return
        self._list_lengths(
            column,
            f"{col} IS NOT NULL AND len({col}) <> {int(common)}",
            f"differ from the most common length {int(common)} (ragged vectors)",
            "give every row a vector of the same length (or set `n_features` to the intended one)",
        )
        if max_length and longest > max_length:
            self.problem(
                f"column {column!r}: lists of {int(longest):,} values, over the limit of {max_length:,}",
                "screen the features before import",
            )
