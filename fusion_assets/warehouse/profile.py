"""Availability profile of the aligned cohort (data-contracts §4) and its summary."""

from __future__ import annotations

from typing import Any

import duckdb

from fusion_assets.cohorts.spec import CohortSpec, ModalitySpec
from fusion_assets.kinds import kind_of
from fusion_assets.kinds.sql import US_PER_DAY, scalar
from fusion_assets.warehouse.align import used_rows_sql
from fusion_assets.warehouse.sql import qident, table_exists

PROFILE = "profile"


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
    return int(scalar(con, "SELECT count(*) FROM profile.availability"))


# ----------------------------------------------------------- dimensionality
def _dimensionality(con: duckdb.DuckDBPyConnection, m: ModalitySpec) -> int:
    """Feature count a model sees for the modality (its kind's count)."""
    exists = table_exists(con, "aligned", m.name)
    return kind_of(m).dimensionality(con, m, f"aligned.{qident(m.name)}" if exists else None)


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
                    OVER (PARTITION BY patient_id ORDER BY event_time)) / {US_PER_DAY}.0 AS gap
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
            scalar(
                con,
                f"SELECT coalesce(avg(CAST({qident(m.name)} AS DOUBLE)), 0) FROM profile.availability",
            )
        )
    complete = float(
        scalar(
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
        # modalities whose kind is a series of time steps (the decision matrix's temporal axis)
        "temporal": [m.name for m in spec.modalities if kind_of(m).temporal],
        "availability": availability,
        "complete_case_fraction": complete,
        "patterns": patterns,
        "dimensionality": {m.name: _dimensionality(con, m) for m in spec.modalities},
        "cadence": {m.name: c for m in spec.modalities if (c := _cadence(con, m)) is not None},
    }
