"""Turn a user's cohort (described by a spec file) into a standard landing batch.

``import_cohort`` reads every source with DuckDB, renames the user's columns to
the landing format of docs/data-contracts.md §1 (``patient_id``, ``index_time``,
``label``, ``sex``, ``age``, ``site``; ``event_time``; the kind's payload), checks
what only the user's files can tell (columns present, ids unique and real, labels
0/1 with both classes, times parseable and unambiguous, no empty feature column,
every modality reaching some patient before its index time), and writes the batch
through the landing zone's append-only protocol (``fusion_assets.landing_zone``:
staged, manifest in ``_READY``, moved into place in one rename, never over another
batch).  The warehouse's own ingest (pandera validation, quarantine, idempotent
load) then takes over.

Any problem raises :class:`CohortImportError` listing all of them, each naming
the table, file, column, rows and the fix; nothing is written in that case, so a
bad import never touches the landing zone or the warehouse.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from fusion_assets.cohorts import import_patients as pt
from fusion_assets.cohorts.import_context import PayloadContext
from fusion_assets.cohorts.problems import ImportProblem, qid, short_error, strlit
from fusion_assets.cohorts.sources import SourceTable, read_source, source_key
from fusion_assets.cohorts.spec import CohortSpec, ModalitySpec
from fusion_assets.cohorts.times import parse_time
from fusion_assets.evaluation.settings import CrossValSettings
from fusion_assets.identifiers import InvalidIdentifier, check_batch_id
from fusion_assets.kinds import kind_of
from fusion_assets.landing_zone import LandingConflict, Published, publish_batch, staging_dir

REPORT_FILE = "import_report.json"
# Written as every patient's index time when the data has none: every modality is
# then untimed, so alignment takes all rows and never compares against it.
PLACEHOLDER_INDEX_TIME = "2000-01-01 00:00:00"
_EXAMPLES = 5


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
    """What an import wrote, and what it reported without failing (``import_report.json``).

    ``age_scale`` is set when the age column is not in years: ages are then NULL in
    the batch and the evaluation leaves age bands out (ingest copies this report
    into ``raw.batches.import_report``).
    """

    cohort: str
    batch_id: str
    batch_dir: str
    rows: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    age_scale: dict[str, Any] | None = None


def _text_columns(spec: CohortSpec) -> dict[tuple, list[str]]:
    """Per source, the columns read as text from a CSV: ids, the label, times."""
    out: dict[tuple, list[str]] = {}
    p = spec.patients_source or {}
    out.setdefault(source_key(p), []).extend(
        c for c in (p.get("id_column"), p.get("label_column"), p.get("index_time")) if c
    )
    for m in spec.modalities:
        desc = m.source or {}
        cols = (desc.get("id_column"), desc.get("time_column"))
        out.setdefault(source_key(desc), []).extend(c for c in cols if c)
    return out


class Importer:
    """One import: a DuckDB connection holding every source, and the problems found."""

    def __init__(self, spec: CohortSpec, log: Callable[[str], None] | None = None) -> None:
        if spec.patients_source is None:
            raise ValueError(
                f"Cohort {spec.name!r} has no patients source: only cohorts read from a spec "
                "file (fusion_assets.cohorts.spec_file) can be imported; the synthetic cohort is "
                "written by `fusion-assets synth`."
            )
        self.spec = spec
        self.con = duckdb.connect()
        self.con.execute("SET TimeZone = 'UTC'")  # the machine's zone never matters
        self.con.execute("SET enable_progress_bar = false")  # progress goes to ``log``
        self._log = log or (lambda _: None)
        self.problems: list[ImportProblem] = []
        self.notes: list[str] = []
        self.age_scale: dict[str, Any] | None = None
        self.sources: dict[tuple, SourceTable] = {}
        self.text_columns = _text_columns(spec)
        self.selects: dict[str, str] = {}  # landing file stem -> SELECT writing it
        self.time_exprs: dict[str, str] = {}  # modality -> its event time SQL
        self.min_per_class = CrossValSettings().folds

    # ------------------------------------------------------------- helpers
    def log(self, text: str) -> None:
        self._log(f"[import] {text}")

    def source(self, where: str, desc: dict[str, Any]) -> SourceTable:
        key = source_key(desc)
        if key not in self.sources:
            table = f"src_{len(self.sources)}"
            self.log(f"{where}: reading {desc.get('path') or 'the query'}")
            src = read_source(self.con, where, desc, table, self.text_columns.get(key, []))
            self.log(f"{where}: {src.n_rows:,} rows, {len(src.columns):,} columns")
            self.sources[key] = src
        return self.sources[key]

    def bad_rows(self, src: SourceTable, condition: str, shown: str) -> tuple[int, list, list]:
        """Count, first data rows (1-based) and example values where ``condition`` holds."""
        count, rows, values = self.con.execute(
            f"""SELECT count(*), list(rowid + 1 ORDER BY rowid)[1:{_EXAMPLES}],
                       list(CAST({shown} AS VARCHAR) ORDER BY rowid)[1:{_EXAMPLES}]
                FROM {qid(src.table)} WHERE {condition}"""
        ).fetchone()
        return int(count), list(rows or []), list(values or [])

    def distinct_values(self, src: SourceTable, shown: str, condition: str) -> list:
        rows = self.con.execute(
            f"SELECT DISTINCT CAST({shown} AS VARCHAR) AS v FROM {qid(src.table)} "
            f"WHERE {condition} ORDER BY v LIMIT {_EXAMPLES}"
        ).fetchall()
        return [r[0] for r in rows]

    def need(self, where: str, src: SourceTable, key: str, column: str | None) -> bool:
        problem = src.missing(where, key, column)
        if problem:
            self.problems.append(problem)
        return problem is None

    def problem(self, where: str, text: str, fix: str) -> None:
        self.problems.append(ImportProblem(where, text, fix))

    def note_age_scale(self, scale: dict[str, Any]) -> None:
        self.age_scale = scale
        self.notes.append(
            f"patients: age column {scale['column']!r} is not in years ({scale['reason']}); "
            f"{scale['action']}"
        )

    # ------------------------------------------------------------- times
    def time_expr(
        self, where: str, src: SourceTable, column: str, desc: dict[str, Any], key: str
    ) -> str | None:
        """SQL parsing ``column`` to a naive UTC TIMESTAMP; reports rows that do not parse."""
        col, typ, fmt = qid(column), src.columns[column], desc.get("time_format")
        parse = parse_time(col, typ, fmt, desc.get("timezone"))
        if parse is None:
            self.problem(
                where,
                f"time column {column!r} holds {typ} values, not dates or times",
                f"write dates/times (e.g. 2024-03-01 or 2024-03-01 08:30) in {column!r}, or fix `{key}`",
            )
            return None
        if fmt and typ != "VARCHAR":
            self.notes.append(f"{where}: `time_format` not used for {column!r}, which holds {typ}")
        missing, rows, _ = self.bad_rows(src, f"{col} IS NULL", col)
        if missing:
            self.problem(
                where,
                f"time column {column!r} is empty on {missing} of {src.n_rows} rows (data rows {rows})",
                "fill in the times or drop those rows",
            )
        n, rows, values = self.bad_rows(src, f"{col} IS NOT NULL AND ({parse.expr}) IS NULL", col)
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
        if parse.zoned and not desc.get("timezone"):
            self._mixed_zones(where, src, column, parse.zoned)
        return parse.expr

    def _mixed_zones(self, where: str, src: SourceTable, column: str, zoned: str) -> None:
        """Naive and zoned values in one column mean two clocks: refused without ``timezone``."""
        n_zoned, _, _ = self.bad_rows(src, f"{zoned}", qid(column))
        n_naive, rows, values = self.bad_rows(
            src, f"{qid(column)} IS NOT NULL AND NOT {zoned}", qid(column)
        )
        if n_zoned and n_naive:
            self.problem(
                where,
                f"time column {column!r} mixes {n_zoned} values with a time zone and {n_naive} "
                f"without (data rows {rows}, values {values})",
                "write every time with its zone, or set `timezone` (e.g. 'Europe/Berlin') to "
                "say which zone the times without one are in",
            )
        elif n_zoned:
            self.notes.append(f"{where}: times of {column!r} carry time zones; stored in UTC")

    # ------------------------------------------------------------- patients
    def patients(self) -> SourceTable | None:
        desc = self.spec.patients_source or {}
        try:
            src = self.source("patients", desc)
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
        index_time = desc.get("index_time")
        exprs = {
            "patient_id": pt.id_expr(self, where, src, desc["id_column"], unique=True),
            "index_time": (
                self.time_expr(where, src, index_time, desc, "patients.index_time")
                if index_time
                else f"TIMESTAMP '{PLACEHOLDER_INDEX_TIME}'"
            ),
            "label": pt.label_expr(
                self, where, src, desc["label_column"], desc.get("positive_label")
            ),
            "sex": pt.sex_expr(self, where, src, desc.get("sex_column"), desc.get("sex_values")),
            "age": pt.age_expr(self, where, src, desc.get("age_column")),
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

    # ------------------------------------------------------------- modalities
    def modality(self, m: ModalitySpec, patients: SourceTable | None) -> None:
        desc = m.source or {}
        try:
            src = self.source(f"modality {m.name}", desc)
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
        exprs = {"patient_id": pt.id_expr(self, where, src, desc["id_column"], unique=False)}
        if time_col:
            t = self.time_expr(where, src, time_col, desc, f"modalities.{m.name}.time_column")
            if t:
                exprs["event_time"] = t
        same_as_patients = patients is not None and src is patients
        ctx = PayloadContext(self, where, m, src, {desc["id_column"], time_col}, same_as_patients)
        payload = kind_of(m).import_payload(ctx, m)
        if payload is None or len(self.problems) > n_before:
            return
        exprs.update(payload)
        select = ", ".join(f"{e} AS {qid(n)}" for n, e in exprs.items())
        self.selects[m.name] = f"SELECT {select} FROM {qid(src.table)} ORDER BY rowid"
        if patients is not None and "patients" in self.selects:
            self.coverage(where, m, src, exprs)

    def coverage(
        self, where: str, m: ModalitySpec, src: SourceTable, exprs: dict[str, str]
    ) -> None:
        """No patient in the cohort, or no row before the index time, is fatal; orphans are noted."""
        id_expr = exprs["patient_id"]
        known, rows_known = self.con.execute(
            f"""SELECT count(DISTINCT {id_expr}) FILTER (WHERE {id_expr} IN (SELECT patient_id FROM patients_out)),
                       count(*) FILTER (WHERE {id_expr} IN (SELECT patient_id FROM patients_out))
                FROM {qid(src.table)}"""
        ).fetchone()
        if known == 0:
            self._no_patient(where, m, src, id_expr)
            return
        if "event_time" in exprs:
            self._usable_before_index(where, m, src, exprs, int(rows_known))
        orphans = src.n_rows - int(rows_known)
        if orphans:
            n, _, ids = self.bad_rows(
                src, f"{id_expr} NOT IN (SELECT patient_id FROM patients_out)", id_expr
            )
            self.notes.append(
                f"modality {m.name} ({src.display}): {orphans} row(s) of patients missing from the "
                f"patients table (e.g. ids {sorted(set(ids))[:3]}) are ignored by ingest"
            )

    def _no_patient(self, where: str, m: ModalitySpec, src: SourceTable, id_expr: str) -> None:
        # Sorted: DISTINCT alone returns an arbitrary sample on several threads.
        theirs = self.distinct_values(src, id_expr, "TRUE")[:3]
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

    def _usable_before_index(
        self, where: str, m: ModalitySpec, src: SourceTable, exprs: dict[str, str], rows_known: int
    ) -> None:
        """A timed modality all of whose rows are at/after their patient's index time is unusable."""
        before = self.con.execute(
            f"""SELECT count(*) FROM (SELECT {exprs["patient_id"]} AS pid, {exprs["event_time"]} AS t
                                      FROM {qid(src.table)}) s
                JOIN patients_out p ON p.patient_id = s.pid WHERE s.t < p.index_time"""
        ).fetchone()[0]
        if not before:
            self.problem(
                where,
                f"all {rows_known} rows of the cohort's patients are at or after their index time, "
                "so alignment can use none of them (only rows before the index time count)",
                f"check `modalities.{m.name}.time_column`, `patients.index_time` and their "
                "time_format / timezone; an untimed modality has no time_column",
            )

    # ------------------------------------------------------------- writing
    def write(self, landing_dir: Path, batch_id: str, replace: bool) -> Published:
        """Write every landing file into a staging folder, then publish it (landing_zone)."""
        staging = staging_dir(landing_dir, batch_id)
        report = ImportReport(
            self.spec.name,
            batch_id,
            str(landing_dir / batch_id),
            notes=self.notes,
            age_scale=self.age_scale,
        )
        try:
            for stem, select in self.selects.items():
                report.rows[stem] = self._copy(stem, select, staging / f"{stem}.parquet")
                self.log(f"wrote {stem}.parquet ({report.rows[stem]:,} rows)")
            (staging / REPORT_FILE).write_text(json.dumps(asdict(report), indent=2))
            return publish_batch(staging, landing_dir, batch_id, replace=replace)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def _copy(self, stem: str, select: str, target: Path) -> int:
        try:
            self.con.execute(f"COPY ({select}) TO {strlit(target)} (FORMAT parquet)")
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
        return int(
            self.con.execute(f"SELECT count(*) FROM read_parquet({strlit(target)})").fetchone()[0]
        )


def _batch_id(spec: CohortSpec, batch_id: str | None) -> str:
    try:
        return check_batch_id(batch_id or spec.name)
    except InvalidIdentifier as exc:
        raise CohortImportError(
            spec.name, [ImportProblem("landing batch", str(exc), "choose another `--batch-id`")]
        ) from None


def import_cohort(
    spec: CohortSpec,
    landing_dir: Path | str,
    batch_id: str | None = None,
    log: Callable[[str], None] | None = None,
    replace: bool = False,
) -> Path:
    """Write ``spec``'s data as the landing batch ``<landing_dir>/<batch_id>/``; returns its folder.

    ``batch_id`` defaults to the cohort name.  Importing the same data again changes
    nothing; other data under an existing batch id is refused (:class:`CohortImportError`)
    unless ``replace``, which keeps the old copy until the new one is ingested.  Raises
    :class:`CohortImportError` (nothing written) when any source is unusable; notes that
    are not fatal (e.g. rows of unknown patients) go to ``log`` and ``import_report.json``.
    """
    batch_id = _batch_id(spec, batch_id)
    importer = Importer(spec, log)
    try:
        patients = importer.patients()
        for m in spec.modalities:
            importer.modality(m, patients)
        if importer.problems:
            raise CohortImportError(spec.name, importer.problems)
        published = importer.write(Path(landing_dir), batch_id, replace)
    except LandingConflict as exc:
        raise CohortImportError(
            spec.name, [ImportProblem(f"landing batch {batch_id!r}", *str(exc).split(" -> ", 1))]
        ) from None
    except RuntimeError as exc:
        if "interrupted" in str(exc).lower():  # DuckDB turned Ctrl-C / SIGTERM into this
            raise KeyboardInterrupt(str(exc)) from exc
        raise
    finally:
        importer.con.close()
    for note in importer.notes:
        importer.log(f"note: {note}")
    if published.unchanged:
        importer.log(f"batch {batch_id!r} is already in the landing zone with the same data")
    if published.replaced:
        importer.log(f"replaced batch {batch_id!r}; the old copy is kept in {published.replaced}")
    return published.batch_dir
