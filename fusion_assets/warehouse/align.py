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
from dataclasses import asdict, dataclass
from typing import Any

import duckdb

from fusion_assets.cohorts.spec import (
    SYNTH_WEARABLE_BINS,
    SYNTH_WEARABLE_WINDOW_DAYS,
    ModalitySpec,
)
from fusion_assets.warehouse import schemas
from fusion_assets.warehouse.sql import qident, table_columns, table_exists

ALIGNED = "aligned"
PROVENANCE = "aligned.provenance"

# The leakage rule, in one place.  Tests swap it for "TRUE" to prove that
# count_future_rows notices when alignment uses rows from after the index time.
BEFORE_INDEX = "r.event_time < p.index_time"

DEFAULT_WINDOW_DAYS = SYNTH_WEARABLE_WINDOW_DAYS
DEFAULT_N_BINS = SYNTH_WEARABLE_BINS
_US_PER_DAY = 86_400 * 1_000_000


@dataclass
class AlignResult:
    """What one ``align_modality`` call produced."""

    modality: str
    patients: int  # rows in aligned.<modality>
    rows_used: int  # raw rows that fed the aggregation
    rows_after_index_time: int  # raw rows excluded because event_time >= index_time
    seconds: float

    def as_metadata(self) -> dict[str, Any]:
        return asdict(self)


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
def _window_us(spec: ModalitySpec) -> int:
    return int(float(spec.option("window_days", DEFAULT_WINDOW_DAYS)) * _US_PER_DAY)


def used_rows_sql(spec: ModalitySpec) -> str:
    """CTEs ``latest`` and ``used``: the raw rows alignment may use.

    ``used`` carries every raw column plus ``index_time``.
    """
    raw = f"raw.{qident(spec.name)}"
    conditions = []
    if spec.timed:
        conditions.append(BEFORE_INDEX)
        if spec.kind == "timeseries":
            conditions.append(
                f"epoch_us(r.event_time) >= epoch_us(p.index_time) - {_window_us(spec)}"
            )
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


def _days_since_last(spec: ModalitySpec) -> str:
    if not spec.timed:
        return "NULL::DOUBLE AS days_since_last"
    return (
        "(epoch_us(any_value(index_time)) - epoch_us(max(event_time)))"
        f" / {_US_PER_DAY}.0 AS days_since_last"
    )


# -------------------------------------------------------------- per kind SQL
def _payload(con: duckdb.DuckDBPyConnection, spec: ModalitySpec) -> dict[str, str]:
    """Payload columns of a raw table -> DuckDB type (keys excluded)."""
    cols = table_columns(con, "raw", spec.name)
    listed = spec.option("features" if spec.kind == "tabular" else "channels")
    names = list(listed) if listed else [c for c in cols if c not in schemas.KEY_COLUMNS]
    return {n: cols[n] for n in names if n in cols}


def _tabular_sql(con: duckdb.DuckDBPyConnection, spec: ModalitySpec) -> str:
    feats = []
    for name, typ in _payload(con, spec).items():
        col = qident(name)
        usable = f"{col} IS NOT NULL" + (f" AND NOT isnan({col})" if typ == "DOUBLE" else "")
        pick = f"arg_max({col}, event_time)" if spec.timed else f"first({col})"
        feats.append(f"{pick} FILTER (WHERE {usable}) AS {col}")
    feat_sql = "".join(f",\n               {f}" for f in feats)
    return f"""
        SELECT patient_id,
               {_days_since_last(spec)}{feat_sql}
        FROM used
        GROUP BY patient_id"""


def _pick_one_sql(spec: ModalitySpec, column: str, out: str, with_days: bool) -> str:
    """The latest used row per patient (any one if untimed), then its list payload.

    The row is chosen on small columns and the list fetched by ``rowid``
    afterwards, so DuckDB never carries 10^3-element lists through a GROUP BY.
    """
    pick = "arg_max(raw_rowid, event_time)" if spec.timed else "min(raw_rowid)"
    days = f"{_days_since_last(spec)}," if with_days else ""
    return f""",
        picked AS (
            SELECT patient_id, {days} {pick} AS raw_rowid
            FROM used
            GROUP BY patient_id
        )
        SELECT k.patient_id,{" k.days_since_last," if with_days else ""}
               CAST(r.{qident(column)} AS FLOAT[]) AS {out}
        FROM picked k
        JOIN raw.{qident(spec.name)} r ON r.rowid = k.raw_rowid"""


def _dense_sql(spec: ModalitySpec) -> str:
    return _pick_one_sql(spec, schemas.list_column(spec), '"values"', with_days=False)


def _sparse_sql(spec: ModalitySpec) -> str:
    idx, val = qident(schemas.SPARSE_INDEX_COLUMN), qident(schemas.SPARSE_VALUE_COLUMN)
    pick = f"arg_max({val}, event_time)" if spec.timed else f"first({val})"
    return f""",
        per_variant AS (  -- one dosage per variant (the latest when timed)
            SELECT patient_id, {idx} AS variant, {pick} AS dosage
            FROM used
            GROUP BY patient_id, {idx}
        )
        SELECT patient_id,
               CAST(list(variant ORDER BY variant) AS INTEGER[]) AS indices,
               CAST(list(dosage ORDER BY variant) AS FLOAT[]) AS "values"
        FROM per_variant
        GROUP BY patient_id"""


def _image_sql(spec: ModalitySpec) -> str:
    return _pick_one_sql(spec, schemas.list_column(spec), "pixels", with_days=True)


def _timeseries_sql(con: duckdb.DuckDBPyConnection, spec: ModalitySpec) -> str:
    """Bin means per channel over the window, time-major, plus the observation mask.

    One hash aggregation with a filtered ``avg`` per (bin, channel): no grid join
    and no ordered list aggregate, which kept every patient's rows in memory and
    ran out of it at 10^5 patients.
    """
    n_bins = int(spec.option("n_bins", DEFAULT_N_BINS))
    window = _window_us(spec)
    chans = [qident(c) for c in _payload(con, spec)]
    cells = [(b, i, c) for b in range(n_bins) for i, c in enumerate(chans)]
    means = ",\n               ".join(
        f"avg({c}) FILTER (WHERE bin = {b} AND {c} IS NOT NULL AND NOT isnan({c})) AS m{b}_{i}"
        for b, i, c in cells
    )
    values = ", ".join(f"coalesce(m{b}_{i}, 0)" for b, i, _ in cells)
    mask = ", ".join(f"CAST(m{b}_{i} IS NOT NULL AS FLOAT)" for b, i, _ in cells)
    return f""",
        binned_rows AS (  -- bin 0 is the oldest day range of the window
            SELECT *, least({n_bins - 1}, CAST(floor(
                       (epoch_us(event_time) - epoch_us(index_time) + {window})
                       * {n_bins} / {window}::DOUBLE) AS INTEGER)) AS bin
            FROM used
        ),
        per_patient AS (
            SELECT patient_id, count(*) AS n_samples,
               {means}
            FROM binned_rows
            GROUP BY patient_id
        )
        SELECT patient_id,
               CAST(n_samples AS INTEGER) AS n_samples,
               CAST([{values}] AS FLOAT[]) AS "values",
               CAST([{mask}] AS FLOAT[]) AS mask
        FROM per_patient"""


def _text_sql(spec: ModalitySpec) -> str:
    col = qident(schemas.TEXT_COLUMN)
    order = " ORDER BY event_time" if spec.timed else ""
    return f"""
        SELECT patient_id,
               CAST(count({col}) AS INTEGER) AS n_notes,
               string_agg({col}, chr(10){order}) AS text
        FROM used
        WHERE {col} IS NOT NULL
        GROUP BY patient_id"""


def _select_sql(con: duckdb.DuckDBPyConnection, spec: ModalitySpec) -> str:
    """The aggregation that follows the ``used`` CTE for the modality's kind."""
    if spec.kind == "tabular":
        return _tabular_sql(con, spec)
    if spec.kind == "omics":
        return _sparse_sql(spec) if schemas.omics_format(spec) == "sparse" else _dense_sql(spec)
    if spec.kind == "image":
        return _image_sql(spec)
    if spec.kind == "timeseries":
        return _timeseries_sql(con, spec)
    if spec.kind == "text":
        return _text_sql(spec)
    raise ValueError(f"Modality {spec.name!r} has unknown kind {spec.kind!r}.")


# Columns of an empty aligned table when no batch has carried the modality yet.
_EMPTY_COLUMNS = {
    "tabular": "patient_id VARCHAR, days_since_last DOUBLE",
    "omics_dense": 'patient_id VARCHAR, "values" FLOAT[]',
    "omics_sparse": 'patient_id VARCHAR, indices INTEGER[], "values" FLOAT[]',
    "image": "patient_id VARCHAR, days_since_last DOUBLE, pixels FLOAT[]",
    "timeseries": 'patient_id VARCHAR, n_samples INTEGER, "values" FLOAT[], mask FLOAT[]',
    "text": "patient_id VARCHAR, n_notes INTEGER, text VARCHAR",
}


def _empty_key(spec: ModalitySpec) -> str:
    return f"omics_{schemas.omics_format(spec)}" if spec.kind == "omics" else spec.kind


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
        con.execute(f"CREATE OR REPLACE TABLE {target} ({_EMPTY_COLUMNS[_empty_key(spec)]})")
        return AlignResult(spec.name, 0, 0, 0, round(time.perf_counter() - start, 3))
    con.execute(
        f"""
        CREATE OR REPLACE TABLE {target} AS
        WITH {used_rows_sql(spec)}{_select_sql(con, spec)}
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
    whose latest used event is not before their index time, and (tabular/image)
    a non-positive ``days_since_last``.  Zero when alignment is correct; any
    alignment that lets a future row through makes it positive.
    """
    if not spec.timed:
        return 0
    target = f"{ALIGNED}.{qident(spec.name)}"
    has_days = spec.kind in ("tabular", "image")
    days = "OR a.days_since_last <= 0" if has_days else ""
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
