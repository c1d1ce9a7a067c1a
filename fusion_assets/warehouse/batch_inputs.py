"""What a batch re-evaluation reads: the batch, the training split, the reference results.

List payloads are summarized per patient inside DuckDB (no 2,000-wide vectors
leave the warehouse for the training split): each kind says how
(``ModalityKind.drift_summaries``).
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb
import pandas as pd

from fusion_assets.cohorts import CohortSpec, ModalitySpec
from fusion_assets.kinds import kind_of
from fusion_assets.reevaluation.inputs import BatchInputs
from fusion_assets.warehouse.sql import table_exists

BATCH_IDS_SQL = "SELECT patient_id FROM raw.patients WHERE batch_id = ?"
TRAIN_IDS_SQL = "SELECT patient_id FROM profile.splits WHERE split = 'train'"
# Every patient the current models were fitted, validated or tested on.
COHORT_IDS_SQL = "SELECT patient_id FROM profile.splits"


def presence(
    con: duckdb.DuckDBPyConnection, spec: CohortSpec, ids_sql: str, params: list
) -> pd.DataFrame:
    """patient_id, label, one bool per modality and the pattern, for the patients of ids_sql."""
    present = ", ".join(
        f'(patient_id IN (SELECT patient_id FROM aligned."{m}")) AS "{m}"'
        if table_exists(con, "aligned", m)
        else f'FALSE AS "{m}"'
        for m in spec.modality_names
    )
    df = con.execute(
        f"SELECT patient_id, label, {present} FROM aligned.patients "
        f"WHERE patient_id IN ({ids_sql}) ORDER BY patient_id",
        params,
    ).df()
    names = spec.modality_names
    df["pattern"] = [
        "+".join(m for m in names if row[m]) or "none" for row in df[names].to_dict("records")
    ]
    return df


def in_training_cohort(con: duckdb.DuckDBPyConnection, patient_ids: pd.Series) -> pd.Series:
    """Per patient id: is it in ``profile.splits`` (the models' training cohort)?"""
    known = {row[0] for row in con.execute(COHORT_IDS_SQL).fetchall()}
    return patient_ids.isin(known).astype(bool)


def _modality_rows(
    con: duckdb.DuckDBPyConnection, modality: ModalitySpec, batch_id: str, has_splits: bool
) -> tuple[pd.DataFrame, tuple[pd.DataFrame, pd.DataFrame | None] | None]:
    """The batch's aligned rows of one modality, and its (batch, train) summaries."""
    table = f'aligned."{modality.name}"'
    frame = con.execute(
        f"SELECT * FROM {table} WHERE patient_id IN ({BATCH_IDS_SQL})", [batch_id]
    ).df()
    columns = dict(
        con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {table})").fetchall()
    )
    select = ", ".join(
        f'{sql} AS "{name}"'
        for name, sql in kind_of(modality).drift_summaries(modality, columns).items()
    )
    if not select:
        return frame, None
    batch_summary = con.execute(
        f"SELECT {select} FROM {table} WHERE patient_id IN ({BATCH_IDS_SQL})", [batch_id]
    ).df()
    train_summary = (
        con.execute(f"SELECT {select} FROM {table} WHERE patient_id IN ({TRAIN_IDS_SQL})").df()
        if has_splits
        else None
    )
    return frame, (batch_summary, train_summary)


def _reference_predictions(
    con: duckdb.DuckDBPyConnection, strategies: list[str]
) -> pd.DataFrame | None:
    if not table_exists(con, "eval", "predictions"):
        return None
    return con.execute(
        "SELECT strategy, prob FROM eval.predictions WHERE split = 'test' AND strategy IN "
        f"({', '.join('?' for _ in strategies)})",
        strategies,
    ).df()


def _reference_auroc(con: duckdb.DuckDBPyConnection) -> pd.DataFrame | None:
    if not table_exists(con, "eval", "subgroup_metrics"):
        return None
    # The report names the interval auroc_ci_low/high; older tables ci_low/high.
    columns = {row[0] for row in con.execute("DESCRIBE eval.subgroup_metrics").fetchall()}
    low, high = (
        ("auroc_ci_low", "auroc_ci_high") if "auroc_ci_low" in columns else ("ci_low", "ci_high")
    )
    reference = con.execute(
        f"SELECT strategy, auroc, {low} AS ci_low, {high} AS ci_high "
        "FROM eval.subgroup_metrics WHERE subgroup = 'all'"
    ).df()
    return reference.drop_duplicates("strategy").set_index("strategy")


def read_batch_inputs(
    con: duckdb.DuckDBPyConnection, spec: CohortSpec, batch_id: str, strategies: Iterable[str]
) -> BatchInputs:
    """Everything one re-evaluation of ``batch_id`` needs, in one connection."""
    batch = presence(con, spec, BATCH_IDS_SQL, [batch_id])
    has_splits = table_exists(con, "profile", "splits")
    batch["in_training"] = in_training_cohort(con, batch["patient_id"]) if has_splits else False
    reference = presence(con, spec, TRAIN_IDS_SQL, []) if has_splits else None
    frames: dict[str, pd.DataFrame] = {}
    summaries: dict[str, tuple[pd.DataFrame, pd.DataFrame | None]] = {}
    for modality in spec.modalities:
        if not table_exists(con, "aligned", modality.name):
            continue
        frames[modality.name], summary = _modality_rows(con, modality, batch_id, has_splits)
        if summary is not None:
            summaries[modality.name] = summary
    return BatchInputs(
        batch,
        reference,
        frames,
        summaries,
        _reference_predictions(con, list(strategies)),
        _reference_auroc(con),
    )
