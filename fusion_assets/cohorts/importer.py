"""Turn a user's cohort (described by a spec file) into a standard landing batch.

``import_cohort`` reads every source with DuckDB, renames the user's columns to
the landing format of docs/data-contracts.md §1 (``patient_id``, ``index_time``,
``label``, ``sex``, ``age``, ``site``; ``event_time``; the kind's payload), checks
what only the user's files can tell (columns present, ids unique, labels 0/1 with
both classes, times parseable, no empty feature column, every modality reaching
some patient), and writes ``<landing>/<batch_id>/`` with ``_READY`` last.  The
warehouse's own ingest (pandera validation, quarantine, idempotent load) then
takes over unchanged.

Any problem raises :class:`CohortImportError` listing all of them, each naming
the table, file, column, rows and the fix; nothing is written in that case, so a
bad import never touches the landing zone or the warehouse.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from fusion_assets.cohorts.sources import (
    ImportProblem,
    SourceTable,
    qid,
    read_source,
    short_error,
    source_key,
)
from fusion_assets.cohorts.spec import CohortSpec, ModalitySpec
from fusion_assets.kinds import kind_of
from fusion_assets.kinds.options import REGEX_PREFIX
from fusion_assets.kinds.sql import is_numeric_type
from fusion_assets.landing_zone import READY_MARKER

REPORT_FILE = "import_report.json"
# Written as every patient's index time when the data has none: every modality is
# then untimed, so alignment takes all rows and never compares against it.
PLACEHOLDER_INDEX_TIME = "2000-01-01 00:00:00"
_EXAMPLES = 5

_TEXT_TYPES = ("VARCHAR",)


class CohortImportError(ValueError):
    """The cohort could not be imported; ``problems`` holds every reason."""

    def __init__(self, cohort: str, problems: list[ImportProblem]):
        self.cohort = cohort
        self.problems = problems
        lines = [
            f"Cohort {cohort!r} was not imported ({len(problems)} problem(s)); "
            "nothing was written to the landing zone or the warehouse "
            "(data rows count from 1, after the header):"
        ]
        lines += [f"  - {p}" for p in problems]
        super().__init__("\n".join(lines))


@dataclass
class ImportReport:
    """What an import wrote, and what it reported without failing."""

    cohort: str
    batch_id: str
    batch_dir: str
    rows: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _strlit(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


class _Importer:
    """One import: a DuckDB connection holding every source, and the problems found."""

    def __init__(self, spec: CohortSpec) -> None:
        if spec.patients_source is None:
            raise ValueError(
                f"Cohort {spec.name!r} has no patients source: only cohorts read from a spec "
                "file (fusion_assets.cohorts.spec_file) can be imported; the synthetic cohort is "
                "written by `fusion-assets synth`."
            )
        self.spec = spec
        self.con = duckdb.connect()
        self.problems: list[ImportProblem] = []
        self.notes: list[str] = []
        self.sources: dict[tuple, SourceTable] = {}
        self.selects: dict[str, str] = {}  # landing file stem -> SELECT writing it

    # ------------------------------------------------------------- helpers
    def source(self, where: str, desc: dict[str, Any], id_column: str | None) -> SourceTable:
        key = source_key(desc)
        if key not in self.sources:
            table = f"src_{len(self.sources)}"
            self.sources[key] = read_source(self.con, where, desc, table, [id_column or ""])
        return self.sources[key]

    def bad_rows(self, src: SourceTable, condition: str, shown: str) -> tuple[int, list, list]:
        """Count, first data rows (1-based) and example values where ``condition`` holds."""
        count, rows, values = self.con.execute(
            f"""SELECT count(*), list(rowid + 1 ORDER BY rowid)[1:{_EXAMPLES}],
                       list(CAST({shown} AS VARCHAR) ORDER BY rowid)[1:{_EXAMPLES}]
                FROM {qid(src.table)} WHERE {condition}"""
        ).fetchone()
        return int(count), list(rows or []), list(values or [])

    def need(self, where: str, src: SourceTable, key: str, column: str | None) -> bool:
        problem = src.missing(where, key, column)
        if problem:
            self.problems.append(problem)
        return problem is None

    def problem(self, where: str, text: str, fix: str) -> None:
        self.problems.append(ImportProblem(where, text, fix))

    def time_expr(
        self, where: str, src: SourceTable, column: str, fmt: str | None, key: str
    ) -> str | None:
        """SQL parsing ``column`` to a naive UTC TIMESTAMP; reports rows that do not parse."""
        col, typ = qid(column), src.columns[column]
        if typ.startswith("TIMESTAMP WITH TIME ZONE"):
            expr = f"timezone('UTC', {col})"
        elif typ.startswith(("TIMESTAMP", "DATE")):
            expr = f"CAST({col} AS TIMESTAMP)"
        elif typ in _TEXT_TYPES:
            expr = (
                f"try_strptime({col}, {_strlit(fmt)})" if fmt else f"TRY_CAST({col} AS TIMESTAMP)"
            )
        else:
            self.problem(
                where,
                f"time column {column!r} holds {typ} values, not dates or times",
                f"write dates/times (e.g. 2024-03-01 or 2024-03-01 08:30) in {column!r}, or fix `{key}`",
            )
            return None
        missing, rows, _ = self.bad_rows(src, f"{col} IS NULL", col)
        if missing:
            self.problem(
                where,
                f"time column {column!r} is empty on {missing} of {src.n_rows} rows (data rows {rows})",
                "fill in the times or drop those rows",
            )
        n, rows, values = self.bad_rows(src, f"{col} IS NOT NULL AND ({expr}) IS NULL", col)
        if n:
            fix = (
                f"correct those values or set `time_format` (now {fmt!r}) to their strptime format"
                if fmt
                else "correct those values or set `time_format` (e.g. '%d/%m/%Y') for this table"
            )
            self.problem(
                where,
                f"time column {column!r}: {n} of {src.n_rows} values are not dates/times "
                f"(data rows {rows}, values {values})",
                fix,
            )
        return expr

    # ------------------------------------------------------------- patients
    def patients(self) -> SourceTable | None:
        desc = self.spec.patients_source or {}
        try:
            src = self.source("patients", desc, desc.get("id_column"))
        except ImportProblem as problem:
            self.problems.append(problem)
            return None
        where = f"patients ({src.display})"
        keys = {
            "id_column": desc["id_column"],
            "label_column": desc["label_column"],
            "index_time": desc.get("index_time"),
            **{k: desc.get(k) for k in ("sex_column", "age_column", "site_column")},
        }
        if not all([self.need(where, src, f"patients.{k}", c) for k, c in keys.items()]):
            return None
        exprs = {
            "patient_id": self.id_expr(where, src, desc["id_column"], unique=True),
            "index_time": (
                self.time_expr(
                    where, src, desc["index_time"], desc.get("time_format"), "patients.index_time"
                )
                if desc.get("index_time")
                else f"TIMESTAMP '{PLACEHOLDER_INDEX_TIME}'"
            ),
            "label": self.label_expr(where, src, desc["label_column"], desc.get("positive_label")),
            "sex": self.sex_expr(where, src, desc.get("sex_column")),
            "age": self.age_expr(where, src, desc.get("age_column")),
            "site": (
                f"CAST({qid(desc['site_column'])} AS VARCHAR)"
                if desc.get("site_column")
                else "NULL::VARCHAR"
            ),
        }
        if any(e is None for e in exprs.values()):
            return None
        select = ", ".join(f"{e} AS {qid(n)}" for n, e in exprs.items())
        self.con.execute(
            f"CREATE TEMP VIEW patients_out AS SELECT {select}, rowid AS _row FROM {qid(src.table)}"
        )
        self.selects["patients"] = "SELECT * EXCLUDE (_row) FROM patients_out ORDER BY _row"
        return src

    def id_expr(self, where: str, src: SourceTable, column: str, unique: bool) -> str:
        expr = f"trim(CAST({qid(column)} AS VARCHAR))"
        n, rows, _ = self.bad_rows(src, f"{expr} IS NULL OR {expr} = ''", qid(column))
        if n:
            self.problem(
                where,
                f"id column {column!r} is empty on {n} of {src.n_rows} rows (data rows {rows})",
                "give every row an id, or drop those rows",
            )
        if unique:
            dupes = self.con.execute(
                f"""SELECT count(*), sum(n), list(id ORDER BY first_row)[1:{_EXAMPLES}],
                           list(rows ORDER BY first_row)[1:{_EXAMPLES}]
                    FROM (SELECT {expr} AS id, count(*) AS n, min(rowid) AS first_row,
                                 list(rowid + 1 ORDER BY rowid)[1:3] AS rows
                          FROM {qid(src.table)} WHERE {expr} IS NOT NULL
                          GROUP BY 1 HAVING count(*) > 1)"""
            ).fetchone()
            if dupes[0]:
                examples = ", ".join(
                    f"{i!r} at data rows {r}" for i, r in zip(dupes[2], dupes[3], strict=False)
                )
                self.problem(
                    where,
                    f"id column {column!r}: {dupes[0]} id(s) appear more than once "
                    f"({int(dupes[1])} rows; e.g. {examples})",
                    "keep one row per patient in the patients table (a patient's repeated "
                    "measurements belong in a modality)",
                )
        return expr

    def label_expr(self, where: str, src: SourceTable, column: str, positive: Any) -> str | None:
        col, typ = qid(column), src.columns[column]
        if positive is not None:
            if isinstance(positive, bool):
                value = f"(TRY_CAST({col} AS BOOLEAN) = {str(positive).upper()})"
            elif isinstance(positive, int | float):
                value = f"(TRY_CAST({col} AS DOUBLE) = {float(positive)!r})"
            else:
                value = f"(trim(CAST({col} AS VARCHAR)) = {_strlit(str(positive).strip())})"
            numeric = f"CASE WHEN {col} IS NULL THEN NULL WHEN {value} THEN 1 ELSE 0 END"
        elif typ == "BOOLEAN":
            numeric = f"CAST({col} AS INTEGER)"
        elif is_numeric_type(typ):
            numeric = f"TRY_CAST({col} AS DOUBLE)"
        else:
            low = f"lower(trim(CAST({col} AS VARCHAR)))"
            numeric = (
                f"CASE WHEN {low} IN ('1', '1.0', 'true', 'yes') THEN 1 "
                f"WHEN {low} IN ('0', '0.0', 'false', 'no') THEN 0 END"
            )
        ok = True
        n, rows, _ = self.bad_rows(src, f"{col} IS NULL", col)
        if n:
            ok = False
            self.problem(
                where,
                f"label column {column!r} is empty on {n} of {src.n_rows} rows (data rows {rows})",
                "give every patient a label, or drop the unlabelled patients",
            )
        bad = f"{col} IS NOT NULL AND (({numeric}) IS NULL OR ({numeric}) NOT IN (0, 1))"
        n, rows, _ = self.bad_rows(src, bad, col)
        if n:
            ok = False
            found = [
                r[0]
                for r in self.con.execute(
                    f"SELECT DISTINCT CAST({col} AS VARCHAR) FROM {qid(src.table)} WHERE {bad} "
                    f"ORDER BY 1 LIMIT {_EXAMPLES}"
                ).fetchall()
            ]
            self.problem(
                where,
                f"label column {column!r}: {n} of {src.n_rows} values are not 0/1 "
                f"(values {found}, data rows {rows})",
                "recode the label to 0/1, or set `patients.positive_label` to the value that means 1",
            )
        if ok:
            classes = self.con.execute(
                f"SELECT DISTINCT CAST({numeric} AS INTEGER) FROM {qid(src.table)}"
            ).fetchall()
            if len(classes) < 2:
                self.problem(
                    where,
                    f"label column {column!r} has a single class ({classes[0][0] if classes else '-'}) "
                    f"over all {src.n_rows} patients",
                    "a classifier needs both classes: check `patients.label_column` / `positive_label`",
                )
        return f"CAST({numeric} AS INTEGER)"

    def sex_expr(self, where: str, src: SourceTable, column: str | None) -> str:
        if not column:
            return "NULL::VARCHAR"
        col = qid(column)
        up = f"upper(trim(CAST({col} AS VARCHAR)))"
        expr = (
            f"CASE WHEN {up} IN ('F', 'FEMALE', 'W', 'WOMAN') THEN 'F' "
            f"WHEN {up} IN ('M', 'MALE', 'MAN') THEN 'M' END"
        )
        n, rows, values = self.bad_rows(src, f"{col} IS NOT NULL AND ({expr}) IS NULL", col)
        if n:
            self.problem(
                where,
                f"sex column {column!r}: {n} values are neither F/M nor female/male (values {values}, data rows {rows})",
                "recode them (unknown: leave empty), or drop `patients.sex_column`",
            )
        return expr

    def age_expr(self, where: str, src: SourceTable, column: str | None) -> str:
        if not column:
            return "NULL::INTEGER"
        col = qid(column)
        n, rows, values = self.bad_rows(
            src, f"{col} IS NOT NULL AND TRY_CAST({col} AS DOUBLE) IS NULL", col
        )
        if n:
            self.problem(
                where,
                f"age column {column!r}: {n} values are not numbers (values {values}, data rows {rows})",
                "write ages in years as numbers (unknown: leave empty)",
            )
        # The landing contract stores whole years.
        return f"CAST(round(TRY_CAST({col} AS DOUBLE)) AS INTEGER)"

    # ------------------------------------------------------------- modalities
    def modality(self, m: ModalitySpec, patients: SourceTable | None) -> None:
        desc = m.source or {}
        try:
            src = self.source(f"modality {m.name}", desc, desc.get("id_column"))
        except ImportProblem as problem:
            self.problems.append(problem)
            return
        where = f"modality {m.name} ({src.display})"
        if not self.need(where, src, f"modalities.{m.name}.id_column", desc.get("id_column")):
            return
        time_col = desc.get("time_column")
        if time_col and not self.need(where, src, f"modalities.{m.name}.time_column", time_col):
            return
        if desc.get("ignored_time_column"):
            self.notes.append(
                f"modality {m.name}: time column {desc['ignored_time_column']!r} ignored because the "
                "patients table has no index time; alignment takes all rows"
            )
        n_before = len(self.problems)
        exprs = {"patient_id": self.id_expr(where, src, desc["id_column"], unique=False)}
        if time_col:
            t = self.time_expr(
                where, src, time_col, desc.get("time_format"), f"modalities.{m.name}.time_column"
            )
            if t:
                exprs["event_time"] = t
        same_as_patients = patients is not None and src is patients
        ctx = _PayloadContext(self, where, m, src, {desc["id_column"], time_col}, same_as_patients)
        payload = kind_of(m).import_payload(ctx, m)
        if payload is None or len(self.problems) > n_before:
            return
        exprs.update(payload)
        select = ", ".join(f"{e} AS {qid(n)}" for n, e in exprs.items())
        self.selects[m.name] = f"SELECT {select} FROM {qid(src.table)} ORDER BY rowid"
        if patients is not None and "patients" in self.selects:
            self.coverage(where, m, src, exprs["patient_id"])

    def coverage(self, where: str, m: ModalitySpec, src: SourceTable, id_expr: str) -> None:
        """No patient in the cohort is fatal; some rows of unknown patients are reported."""
        known, rows_known = self.con.execute(
            f"""SELECT count(DISTINCT {id_expr}) FILTER (WHERE {id_expr} IN (SELECT patient_id FROM patients_out)),
                       count(*) FILTER (WHERE {id_expr} IN (SELECT patient_id FROM patients_out))
                FROM {qid(src.table)}"""
        ).fetchone()
        if known == 0:
            theirs = [
                r[0]
                for r in self.con.execute(
                    # Sorted: DISTINCT alone returns an arbitrary sample on several threads.
                    f"SELECT DISTINCT {id_expr} AS id FROM {qid(src.table)} ORDER BY id LIMIT 3"
                ).fetchall()
            ]
            ours = [
                r[0]
                for r in self.con.execute(
                    "SELECT patient_id FROM patients_out ORDER BY patient_id LIMIT 3"
                ).fetchall()
            ]
            self.problem(
                where,
                f"none of its {src.n_rows} rows belongs to a patient of the patients table "
                f"(its ids look like {theirs}, the patients' like {ours})",
                f"check `modalities.{m.name}.id_column` and that both tables write ids the same way",
            )
            return
        orphans = src.n_rows - int(rows_known)
        if orphans:
            n, _, ids = self.bad_rows(
                src, f"{id_expr} NOT IN (SELECT patient_id FROM patients_out)", id_expr
            )
            self.notes.append(
                f"modality {m.name} ({src.display}): {orphans} row(s) of patients missing from the "
                f"patients table (e.g. ids {sorted(set(ids))[:3]}) are ignored by ingest"
            )

    # ------------------------------------------------------------- writing
    def write(self, landing_dir: Path, batch_id: str) -> Path:
        landing_dir.mkdir(parents=True, exist_ok=True)
        # Hidden until complete: folders starting with "." are never listed as batches.
        tmp = landing_dir / f".import-{batch_id}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        report = ImportReport(
            self.spec.name, batch_id, str(landing_dir / batch_id), notes=self.notes
        )
        try:
            for stem, select in self.selects.items():
                target = tmp / f"{stem}.parquet"
                try:
                    self.con.execute(f"COPY ({select}) TO {_strlit(str(target))} (FORMAT parquet)")
                except duckdb.Error as exc:
                    raise CohortImportError(
                        self.spec.name,
                        [
                            ImportProblem(
                                stem,
                                f"could not convert the data: {short_error(exc)}",
                                "correct the values named above",
                            )
                        ],
                    ) from None
                report.rows[stem] = int(
                    self.con.execute(
                        f"SELECT count(*) FROM read_parquet({_strlit(str(target))})"
                    ).fetchone()[0]
                )
            (tmp / REPORT_FILE).write_text(json.dumps(asdict(report), indent=2))
            batch_dir = landing_dir / batch_id
            if batch_dir.exists():
                shutil.rmtree(batch_dir)  # a re-import replaces the batch (ingest is idempotent)
            tmp.rename(batch_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        (batch_dir / READY_MARKER).touch()  # last: the batch is complete
        return batch_dir


class _PayloadContext:
    """The importer's checks for one modality's payload, as a kind calls them (ImportContext)."""

    def __init__(
        self,
        importer: _Importer,
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

    def key(self, option: str) -> str:
        return f"modalities.{self.m.name}.{option}"

    def column_type(self, column: str) -> str:
        return self.src.columns[column]

    def problem(self, text: str, fix: str) -> None:
        self.importer.problem(self.where, text, fix)

    def need(self, option: str, column: str | None) -> bool:
        return self.importer.need(self.where, self.src, self.key(option), column)

    def bad_rows(self, condition: str, shown: str) -> tuple[int, list, list]:
        return self.importer.bad_rows(self.src, condition, shown)

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
        return names

    def infinite_values(self, names: list[str]) -> None:
        """Numeric columns holding +/-inf, by column, with the data rows."""
        for c in names:
            if self.src.columns[c] not in ("FLOAT", "DOUBLE", "REAL"):
                continue  # only floating-point columns can hold infinities
            n, rows, values = self.bad_rows(f"isinf({qid(c)})", qid(c))
            if n:
                self.problem(
                    f"column {c!r}: {n} value(s) are infinite ({values[:2]}; data rows {rows})",
                    "replace them by an empty cell (missing) or a real value",
                )

    def empty_columns(self, names: list[str], option: str) -> None:
        counts = self.importer.con.execute(
            "SELECT "
            + ", ".join(f"count({qid(c)})" for c in names)
            + f" FROM {qid(self.src.table)}"
        ).fetchone()
        empty = [c for c, n in zip(names, counts, strict=True) if n == 0]
        if empty:
            self.problem(
                f"feature column(s) {empty[:10]} are entirely empty ({self.src.n_rows} rows, no value)",
                f"drop them from `{self.key(option)}` (or from the file), or fill them",
            )

    def numeric_only(self, names: list[str], what: str) -> bool:
        columns = self.src.columns
        bad = [f"{c} ({columns[c]})" for c in names if not is_numeric_type(columns[c])]
        if bad:
            self.problem(
                f"{what} must be numeric; not numeric: {bad[:10]}",
                "convert them to numbers or leave them out",
            )
        return not bad

    def list_payload(
        self, column: str, option: str, out: str, length: int | None, fix: str
    ) -> dict[str, str] | None:
        """``out``: the list column ``column`` as FLOAT[], every list ``length`` long."""
        if not self.need(option, column):
            return None
        typ = self.src.columns[column]
        if not typ.endswith("]"):
            self.problem(
                f"column {column!r} holds {typ}, not a list of numbers",
                "store one list of numbers per row (parquet list column)",
            )
            return None
        if length:
            n, rows, lengths = self.bad_rows(
                f"{qid(column)} IS NOT NULL AND len({qid(column)}) <> {length}",
                f"len({qid(column)})",
            )
            if n:
                self.problem(
                    f"column {column!r}: {n} of {self.src.n_rows} lists do not have {length} values "
                    f"(lengths {lengths}, data rows {rows})",
                    fix,
                )
        return {out: f"CAST({qid(column)} AS FLOAT[])"}


def import_cohort(
    spec: CohortSpec,
    landing_dir: Path | str,
    batch_id: str | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Write ``spec``'s data as the landing batch ``<landing_dir>/<batch_id>/``; returns its folder.

    ``batch_id`` defaults to the cohort name, so importing again replaces the
    batch (and re-ingesting it changes nothing).  Raises :class:`CohortImportError`
    (nothing written) when any source is unusable; notes that are not fatal
    (e.g. rows of unknown patients) go to ``log`` and ``import_report.json``.
    """
    batch_id = batch_id or re.sub(r"[^A-Za-z0-9_.-]", "_", spec.name)
    importer = _Importer(spec)
    try:
        patients = importer.patients()
        for m in spec.modalities:
            importer.modality(m, patients)
        if importer.problems:
            raise CohortImportError(spec.name, importer.problems)
        batch_dir = importer.write(Path(landing_dir), batch_id)
    finally:
        importer.con.close()
    for note in importer.notes:
        (log or (lambda _: None))(f"[import] note: {note}")
    return batch_dir
