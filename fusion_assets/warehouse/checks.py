"""Data-quality checks on the aligned cohort and its profile.

Each returns ``(passed, metadata)`` with json-able metadata of counts only (no
patient identifiers leave the warehouse), for Dagster asset checks.  The rules
are pandera schemas so the same definitions can validate frames elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import pandas as pd
import pandera.pandas as pa

from fusion_assets.cohorts.spec import CohortSpec, ModalitySpec
from fusion_assets.warehouse.align import count_future_rows
from fusion_assets.warehouse.sql import qident

CheckResult = tuple[bool, dict[str, Any]]


def _run(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> dict[str, int]:
    """Failing row count per check name ({} when the frame passes)."""
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        out: dict[str, int] = {}
        for (column, check), group in cases.groupby(["column", "check"], dropna=False):
            out[f"{column}: {check}"] = (
                int(group["index"].nunique()) if group["index"].notna().any() else len(frame)
            )
        return out
    return {}


def check_unique_patient_ids(
    con: duckdb.DuckDBPyConnection, table: str = "aligned.patients"
) -> CheckResult:
    """Every patient id appears once and none is null."""
    frame = con.execute(f"SELECT patient_id FROM {table}").df()
    schema = pa.DataFrameSchema({"patient_id": pa.Column(str, nullable=False, unique=True)})
    failures = _run(schema, frame)
    duplicates = int(frame["patient_id"].duplicated(keep=False).sum())
    return not failures, {
        "n_patients": len(frame),
        "duplicated_rows": duplicates,
        "failures": failures,
    }


def check_labels_and_index_times(con: duckdb.DuckDBPyConnection) -> CheckResult:
    """Every aligned patient has a 0/1 label and an index time."""
    frame = con.execute("SELECT label, index_time FROM aligned.patients").df()
    schema = pa.DataFrameSchema(
        {
            "label": pa.Column(checks=pa.Check.isin([0, 1]), nullable=False),
            "index_time": pa.Column(nullable=False),
        }
    )
    failures = _run(schema, frame)
    return not failures, {
        "n_patients": len(frame),
        "missing_label": int(frame["label"].isna().sum()),
        "missing_index_time": int(frame["index_time"].isna().sum()),
        "failures": failures,
    }


def check_availability_floor(
    con: duckdb.DuckDBPyConnection, spec: CohortSpec, floor: float | dict[str, float] = 0.05
) -> CheckResult:
    """Each modality is present for at least ``floor`` of patients (per-modality floors allowed)."""
    floors = floor if isinstance(floor, dict) else {m: floor for m in spec.modality_names}
    rates = {
        m: float(
            con.execute(
                f"SELECT coalesce(avg(CAST({qident(m)} AS DOUBLE)), 0) FROM profile.availability"
            ).fetchall()[0][0]
        )
        for m in spec.modality_names
    }
    frame = pd.DataFrame(
        {
            "modality": list(rates),
            "rate": list(rates.values()),
            "floor": [floors.get(m, 0.0) for m in rates],
        }
    )
    schema = pa.DataFrameSchema(
        checks=[pa.Check(lambda df: df["rate"] >= df["floor"], name="availability_at_least_floor")]
    )
    failures = _run(schema, frame)
    below = frame.loc[frame["rate"] < frame["floor"], "modality"].tolist()
    return not failures, {"availability": rates, "floors": floors, "below_floor": below}


def check_label_prevalence(
    con: duckdb.DuckDBPyConnection,
    min_patients: int = 100,
    bounds: tuple[float, float] = (0.01, 0.99),
) -> CheckResult:
    """No availability pattern with ``min_patients`` or more has a degenerate label rate."""
    frame = con.execute(
        "SELECT pattern, count(*) AS n, avg(label) AS prevalence FROM profile.availability "
        "GROUP BY pattern HAVING count(*) >= ? ORDER BY pattern",
        [min_patients],
    ).df()
    lo, hi = bounds
    schema = pa.DataFrameSchema(
        {"prevalence": pa.Column(float, pa.Check.in_range(lo, hi), nullable=False)}
    )
    failures = _run(schema, frame) if len(frame) else {}
    bad = frame.loc[(frame["prevalence"] < lo) | (frame["prevalence"] > hi)]
    return not failures, {
        "patterns_checked": len(frame),
        "bounds": list(bounds),
        "degenerate_patterns": {
            r.pattern: {"n": int(r.n), "prevalence": float(r.prevalence)} for r in bad.itertuples()
        },
    }


def check_no_future_rows(
    con: duckdb.DuckDBPyConnection, modalities: Sequence[ModalitySpec]
) -> CheckResult:
    """No aligned row of these modalities comes from at/after the patient's index time."""
    counts = {m.name: count_future_rows(con, m) for m in modalities}
    frame = pd.DataFrame({"modality": list(counts), "future_rows": list(counts.values())})
    schema = pa.DataFrameSchema({"future_rows": pa.Column(int, pa.Check.eq(0))})
    failures = _run(schema, frame)
    return not failures, {"future_rows": counts}
