"""Availability profile of the aligned cohort (data-contracts §4) and its summary."""

from __future__ import annotations

from typing import Any

import duckdb

from fusion_assets.cohorts.spec import CohortSpec, ModalitySpec
from fusion_assets.warehouse import schemas
from fusion_assets.warehouse.align import DEFAULT_N_BINS, used_rows_sql
from fusion_assets.warehouse.sql import qident, table_columns, table_exists

PROFILE = "profile"
_US_PER_DAY = 86_400 * 1_000_000


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> Any:
    rows = con.execute(sql, params or []).fetchall()
    return rows[0][0] if rows else None


def build_availability(con: duckdb.DuckDBPyConnection, spec: CohortSpec) -> int:
    """``profile.availability``: presence flags per modality, pattern, count, label.

    A modality is present when ``aligned.<modality>`` has a row for the patient
    (a modality never loaded counts as absent for everyone).  Returns row count.
    """
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {PROFILE}")
    joins, flags, parts = [], [], []
    for i, m in enumerate(spec.modalities):
        name = qident(m.name)
        if table_exists(con, "aligned", m.name):
            joins.append(f"LEFT JOIN aligned.{name} m{i} ON m{i}.patient_id = p.patient_id")
            flags.append(f"m{i}.patient_id IS NOT NULL AS {name}")
        else:
            flags.append(f"FALSE AS {name}")
        parts.append(f"CASE WHEN {name} THEN '{m.name.replace(chr(39), chr(39) * 2)}' END")
    flag_sql = "".join(f",\n                   {f}" for f in flags)
    join_sql = "\n            ".join(joins)
    count_sql = " + ".join(f"CAST({qident(m)} AS INTEGER)" for m in spec.modality_names) or "0"
    pattern_sql = (
        f"coalesce(nullif(concat_ws('+', {', '.join(parts)}), ''), 'none')" if parts else "'none'"
    )
    cols = ", ".join(qident(m) for m in spec.modality_names)
    con.execute(
        f"""
        CREATE OR REPLACE TABLE profile.availability AS
        WITH flags AS (  -- one row per aligned patient, a presence flag per modality
            SELECT p.patient_id, p.label{flag_sql}
            FROM aligned.patients p
            {join_sql}
        )
        SELECT patient_id, {cols + "," if cols else ""}
               {pattern_sql} AS pattern,
               CAST({count_sql} AS INTEGER) AS n_modalities,
               label
        FROM flags
        ORDER BY patient_id
        """
    )
    return int(_scalar(con, "SELECT count(*) FROM profile.availability"))


# ----------------------------------------------------------- dimensionality
def _dimensionality(con: duckdb.DuckDBPyConnection, m: ModalitySpec) -> int:
    """Feature count a model sees for the modality (see module docs of the kinds)."""
    exists = table_exists(con, "aligned", m.name)
    target = f"aligned.{qident(m.name)}"
    if m.kind == "tabular":
        cols = table_columns(con, "aligned", m.name) if exists else {}
        return len([c for c in cols if c not in ("patient_id", "days_since_last")])
    if m.kind in ("omics", "image"):
        declared = schemas.list_length(m)
        if declared:
            return declared
        if not exists:
            return 0
        if m.kind == "omics" and schemas.omics_format(m) == "sparse":
            return int(
                _scalar(con, f"SELECT coalesce(max(list_max(indices)) + 1, 0) FROM {target}")
            )
        col = '"values"' if m.kind == "omics" else "pixels"
        return int(_scalar(con, f"SELECT coalesce(max(len({col})), 0) FROM {target}"))
    if m.kind == "timeseries":
        channels = m.option("channels")
        if channels:
            return int(m.option("n_bins", DEFAULT_N_BINS)) * len(channels)
        return (
            int(_scalar(con, f'SELECT coalesce(max(len("values")), 0) FROM {target}'))
            if exists
            else 0
        )
    if m.kind == "text":
        if not exists:
            return 0
        # Vocabulary size: distinct lower-case alphanumeric tokens in the aligned text.
        return int(
            _scalar(
                con,
                f"""
                WITH tokens AS (
                    SELECT unnest(regexp_split_to_array(lower(text), '[^a-z0-9]+')) AS token
                    FROM {target}
                )
                SELECT count(DISTINCT token) FROM tokens WHERE token <> ''
                """,
            )
        )
    return 0


# ----------------------------------------------------------------- cadence
def _cadence(con: duckdb.DuckDBPyConnection, m: ModalitySpec) -> dict[str, Any] | None:
    """Samples per patient and gaps between consecutive samples, as used by align."""
    if not m.timed or not table_exists(con, "raw", m.name):
        return None
    row = con.execute(
        f"""
        WITH {used_rows_sql(m)},
        per_patient AS (
            SELECT patient_id, count(*) AS n FROM used GROUP BY patient_id
        ),
        gaps AS (  -- days between consecutive samples of one patient
            SELECT (epoch_us(event_time) - lag(epoch_us(event_time))
                    OVER (PARTITION BY patient_id ORDER BY event_time)) / {_US_PER_DAY}.0 AS gap
            FROM used
        )
        SELECT (SELECT count(*) FROM per_patient),
               (SELECT quantile_cont(n, [0.25, 0.5, 0.75]) FROM per_patient),
               (SELECT median(gap) FROM gaps WHERE gap IS NOT NULL),
               (SELECT stddev_pop(gap) / nullif(avg(gap), 0) FROM gaps WHERE gap IS NOT NULL),
               (SELECT count(gap) FROM gaps)
        """
    ).fetchall()[0]
    patients, quartiles, median_gap, gap_cv, n_gaps = row
    q = quartiles or [None, None, None]
    return {
        "patients": int(patients),
        "samples_per_patient_median": q[1],
        "samples_per_patient_q1": q[0],
        "samples_per_patient_q3": q[2],
        "median_gap_days": median_gap,
        # Coefficient of variation of the gaps: ~0 for a fixed cadence, ~1 for Poisson sampling.
        "gap_cv": gap_cv,
        "n_gaps": int(n_gaps),
    }


def summarize_profile(con: duckdb.DuckDBPyConnection, spec: CohortSpec) -> dict[str, Any]:
    """Cohort-level numbers of ``profile.availability`` plus dims and cadence (json-able).

    Requires :func:`build_availability` to have run.
    """
    n, positives, sites = con.execute(
        "SELECT count(*), coalesce(sum(a.label), 0), count(DISTINCT p.site) "
        "FROM profile.availability a JOIN aligned.patients p USING (patient_id)"
    ).fetchall()[0]
    n_modalities = len(spec.modalities)
    availability = {}
    for m in spec.modalities:
        availability[m.name] = float(
            _scalar(
                con,
                f"SELECT coalesce(avg(CAST({qident(m.name)} AS DOUBLE)), 0) FROM profile.availability",
            )
        )
    complete = float(
        _scalar(
            con,
            "SELECT coalesce(avg(CAST(n_modalities = ? AS DOUBLE)), 0) FROM profile.availability",
            [n_modalities],
        )
    )
    patterns = [
        {"pattern": p, "n": int(k), "n_positive": int(pos), "label_prevalence": float(prev)}
        for p, k, pos, prev in con.execute(
            """
            SELECT pattern, count(*) AS n, sum(label), avg(label)
            FROM profile.availability
            GROUP BY pattern
            ORDER BY n DESC, pattern
            """
        ).fetchall()
    ]
    return {
        "n_patients": int(n),
        "n_positive": int(positives),
        "label_prevalence": float(positives / n) if n else None,
        "n_sites": int(sites),
        "modalities": {m.name: m.kind for m in spec.modalities},
        "availability": availability,
        "complete_case_fraction": complete,
        "patterns": patterns,
        "dimensionality": {m.name: _dimensionality(con, m) for m in spec.modalities},
        "cadence": {m.name: c for m in spec.modalities if (c := _cadence(con, m)) is not None},
    }
