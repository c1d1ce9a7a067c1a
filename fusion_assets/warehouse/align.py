"""Align raw modality rows to one row per patient as of the index time.

Everything is DuckDB SQL over ``raw.*``; see docs/data-contracts.md §3 for the
output tables.  Two rules hold for every modality:

* only rows with ``event_time < index_time`` are used (untimed modalities: all
  rows), so leakage bait never reaches ``aligned``;
* a patient's rows come from the latest batch that carries that patient in that
  modality ("latest batch wins", as for ``aligned.patients``), so a re-sent
  patient is not counted twice.

Each ``align_modality`` call also writes ``aligned.provenance`` (per modality
and patient: rows used, the latest event time used, rows used at/after the index
time) from the very row set that fed the aggregation; ``count_future_rows``
audits it against ``aligned.patients``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import duckdb

from fusion_assets.cohorts.spec import ModalitySpec
from fusion_assets.kinds import kind_of
from fusion_assets.warehouse.sql import qident, table_exists

ALIGNED = "aligned"
PROVENANCE = "aligned.provenance"

# The leakage rule, in one place.  Tests swap it for "TRUE" to prove that
# count_future_rows notices when alignment uses rows from after the index time.
BEFORE_INDEX = "r.event_time < p.index_time"


@dataclass
class AlignResult:
    """What one ``align_modality`` call produced."""

    modality: str
    patients: int  # rows in aligned.<modality>
    rows_used: int  # raw rows that fed the aggregation
    rows_after_index_time: int  # raw rows excluded because event_time >= index_time
    seconds: float


def align_patients(con: duckdb.DuckDBPyConnection) -> int:
    """``aligned.patients``: one row per patient, the latest batch wins."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {ALIGNED}")
    con.execute(
        """
        CREATE OR REPLACE TABLE aligned.patients AS
        WITH ranked AS (
            SELECT p.*, b.seq
            FROM raw.patients p
            JOIN raw.batches b USING (batch_id)
        )
        SELECT patient_id, index_time, label, sex, age, site, batch_id
        FROM ranked
        QUALIFY row_number() OVER (PARTITION BY patient_id ORDER BY seq DESC) = 1
        ORDER BY patient_id
        """
    )
    row = con.execute("SELECT count(*) FROM aligned.patients").fetchall()[0]
    return int(row[0]) if row else 0


# ------------------------------------------------------------------ row sets
def used_rows_sql(spec: ModalitySpec) -> str:
    """CTEs ``latest`` and ``used``: the raw rows alignment may use.

    ``used`` carries every raw column plus ``index_time``.
    """
    raw = f"raw.{qident(spec.name)}"
    conditions: list[str] = []
    if spec.timed:
        conditions = [BEFORE_INDEX, *kind_of(spec).timed_row_conditions(spec)]
    where = "WHERE " + " AND ".join(conditions) if conditions else ""
    return f"""
        latest AS (  -- the latest batch carrying each patient in this modality
            SELECT r.patient_id, max(b.seq) AS seq
            FROM {raw} r JOIN raw.batches b USING (batch_id)
            GROUP BY r.patient_id
        ),
        used AS (  -- rows before the patient's index time, from that batch
            SELECT r.*, r.rowid AS raw_rowid, p.index_time
            FROM {raw} r
            JOIN raw.batches b USING (batch_id)
            JOIN latest l ON l.patient_id = r.patient_id AND l.seq = b.seq
            JOIN aligned.patients p ON p.patient_id = r.patient_id
            {where}
        )"""


def _write_provenance(con: duckdb.DuckDBPyConnection, spec: ModalitySpec) -> int:
    """Record, per patient, what the aggregation used; returns rows used."""
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {PROVENANCE} (modality VARCHAR, patient_id VARCHAR, "
        "n_rows BIGINT, max_event_time TIMESTAMP, n_at_or_after_index BIGINT)"
    )
    con.execute(f"DELETE FROM {PROVENANCE} WHERE modality = ?", [spec.name])
    if spec.timed:
        cols = "max(event_time), count(*) FILTER (WHERE event_time >= index_time)"
    else:
        cols = "NULL::TIMESTAMP, 0"
    con.execute(
        f"""
        INSERT INTO {PROVENANCE}
        WITH {used_rows_sql(spec)}
        SELECT ?, patient_id, count(*), {cols}
        FROM used
        GROUP BY patient_id
        """,
        [spec.name],
    )
    row = con.execute(
        f"SELECT coalesce(sum(n_rows), 0) FROM {PROVENANCE} WHERE modality = ?", [spec.name]
    ).fetchall()[0]
    return int(row[0]) if row else 0


def _rows_after_index_time(con: duckdb.DuckDBPyConnection, spec: ModalitySpec) -> int:
    if not spec.timed:
        return 0
    row = con.execute(
        f"""
        SELECT count(*) FROM raw.{qident(spec.name)} r
        JOIN aligned.patients p USING (patient_id)
        WHERE r.event_time >= p.index_time
        """
    ).fetchall()[0]
    return int(row[0]) if row else 0


def align_modality(con: duckdb.DuckDBPyConnection, spec: ModalitySpec) -> AlignResult:
    """Build ``aligned.<spec.name>`` (data-contracts §3) from ``raw.<spec.name>``.

    Requires ``aligned.patients`` (call :func:`align_patients` first).
    """
    start = time.perf_counter()
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {ALIGNED}")
    target = f"{ALIGNED}.{qident(spec.name)}"
    if not table_exists(con, "raw", spec.name):
        columns = kind_of(spec).empty_aligned_columns(spec)
        con.execute(f"CREATE OR REPLACE TABLE {target} ({columns})")
        return AlignResult(spec.name, 0, 0, 0, round(time.perf_counter() - start, 3))
    con.execute(
        f"""
        CREATE OR REPLACE TABLE {target} AS
        WITH {used_rows_sql(spec)}{kind_of(spec).aligned_sql(con, spec)}
        """
    )
    rows_used = _write_provenance(con, spec)
    row = con.execute(f"SELECT count(*) FROM {target}").fetchall()[0]
    return AlignResult(
        modality=spec.name,
        patients=int(row[0]) if row else 0,
        rows_used=rows_used,
        rows_after_index_time=_rows_after_index_time(con, spec),
        seconds=round(time.perf_counter() - start, 3),
    )


def count_future_rows(con: duckdb.DuckDBPyConnection, spec: ModalitySpec) -> int:
    """Aligned rows that are not provably from before the index time.

    Counts, for the modality: raw rows at/after the index time that fed the
    aggregation, aligned patients with no provenance (unexplained rows), patients
    whose latest used event is not before their index time, and (kinds whose
    aligned table has it) a non-positive ``days_since_last``.  Zero when alignment is correct; any
    alignment that lets a future row through makes it positive.
    """
    if not spec.timed:
        return 0
    target = f"{ALIGNED}.{qident(spec.name)}"
    days = "OR a.days_since_last <= 0" if kind_of(spec).has_days_since_last(spec) else ""
    row = con.execute(
        f"""
        WITH audited AS (
            SELECT a.patient_id,
                   v.patient_id IS NULL AS unexplained,
                   coalesce(v.n_at_or_after_index, 0) AS n_future,
                   coalesce(v.max_event_time >= p.index_time, FALSE) {days} AS late
            FROM {target} a
            JOIN aligned.patients p USING (patient_id)
            LEFT JOIN {PROVENANCE} v ON v.modality = ? AND v.patient_id = a.patient_id
        )
        SELECT coalesce(sum(CASE WHEN unexplained OR late THEN greatest(n_future, 1) ELSE n_future END), 0)
        FROM audited
        """,
        [spec.name],
    ).fetchall()[0]
    return int(row[0]) if row else 0


def align_all(
    con: duckdb.DuckDBPyConnection, modalities: tuple[ModalitySpec, ...]
) -> dict[str, AlignResult]:
    """Convenience: ``aligned.patients`` then every modality, in spec order."""
    align_patients(con)
    return {m.name: align_modality(con, m) for m in modalities}
